using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;

namespace FmaEdge.Evaluation.Tests.Datasets;

public sealed class TreeFileTests : IDisposable
{
    private readonly TempFolder _temp = new("core-tree");

    public void Dispose() => _temp.Dispose();

    private string WriteFile(string name, string text)
    {
        var path = _temp.File(name);
        File.WriteAllText(path, text);
        return path;
    }

    private TaxonomyException LoadFails(string name, string text, bool allowSingle = false) =>
        Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadTreeFile(WriteFile(name, text), allowSingle));

    private const string TwoLevelJson = """
        {
          "levels": [
            { "name": "Material", "classes": [ { "name": "metal" }, { "name": "paint", "display": "Paint" } ] },
            { "name": "Defect", "classes": [
                { "name": "scratch", "parent": "metal" },
                { "name": "dent", "parent": "metal", "display": "Dent" },
                { "name": "bubble", "parent": "paint" },
                { "name": "scratch", "parent": "paint" } ] }
          ]
        }
        """;

    private const string TwoLevelYaml = """
        levels:
          - name: Material
            classes:
              - name: metal
              - name: paint
                display: Paint
          - name: Defect
            classes:
              - { name: scratch, parent: metal }
              - { name: dent, parent: metal, display: Dent }
              - { name: bubble, parent: paint }
              - { name: scratch, parent: paint }
        """;

    [Fact]
    public void LoadTreeFile_Json_BuildsTheTree()
    {
        var tree = DatasetLoader.LoadTreeFile(WriteFile("tree.json", TwoLevelJson));

        Assert.Equal(["Material", "Defect"], tree.Levels.Select(l => l.Name));
        Assert.Equal([2, 4], tree.LevelSizes);
        Assert.Equal(["metal/scratch", "metal/dent", "paint/bubble", "paint/scratch"], tree.Leaves.Select(l => l.Path));
        Assert.Equal(["metal/scratch", "Dent", "bubble", "paint/scratch"], tree.Leaves.Select(l => l.Label));
        Assert.Equal("Paint", tree.Levels[0].Classes[1].Label);
        Assert.Equal([0, 0, 1, 1], tree.Leaves.Select(l => l.ParentIndex));
    }

    [Theory]
    [InlineData("tree.yaml")]
    [InlineData("tree.yml")]
    [InlineData("TREE.YAML")]
    public void LoadTreeFile_Yaml_EqualsTheJsonTree(string name)
    {
        var fromYaml = DatasetLoader.LoadTreeFile(WriteFile(name, TwoLevelYaml));
        var fromJson = DatasetLoader.LoadTreeFile(WriteFile("tree.json", TwoLevelJson));

        Assert.Equal(TaxonomyLoader.ToJson(fromJson), TaxonomyLoader.ToJson(fromYaml));
        Assert.Equal(fromJson.Leaves.Select(l => l.Label), fromYaml.Leaves.Select(l => l.Label));
    }

    [Fact]
    public void LoadTreeFile_JsonWithCommentsAndTrailingCommas_IsAccepted()
    {
        var tree = DatasetLoader.LoadTreeFile(WriteFile("t.json", """
            // a hand-written tree
            { "Levels": [ { "Name": "L", "Classes": [ { "Name": "a" }, { "Name": "b" }, ] }, ], }
            """));

        Assert.Equal(["a", "b"], tree.Leaves.Select(l => l.Name));
    }

    [Fact]
    public void LoadTreeFile_UnnamedLevels_AreNamedL1ToLn()
    {
        var tree = DatasetLoader.LoadTreeFile(WriteFile("t.yaml", """
            levels:
              - classes: [ { name: a }, { name: b } ]
              - classes: [ { name: x, parent: a }, { name: y, parent: b } ]
            """));

        Assert.Equal(["L1", "L2"], tree.Levels.Select(l => l.Name));
    }

    [Fact]
    public void LoadTreeFile_ClassDefinedTwice_IsReported()
    {
        var e = LoadFails("t.json", """
            { "levels": [ { "name": "M", "classes": [ { "name": "metal" }, { "name": "paint" } ] },
                          { "name": "D", "classes": [ { "name": "dent", "parent": "metal" }, { "name": "run", "parent": "paint" },
                                                      { "name": "dent", "parent": "metal" } ] } ] }
            """);

        Assert.Equal(["level 'D': class 'metal/dent' is defined twice"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_UnknownParent_IsReported()
    {
        var e = LoadFails("t.yaml", """
            levels:
              - { name: M, classes: [ { name: metal }, { name: paint } ] }
              - { name: D, classes: [ { name: dent, parent: metal }, { name: run, parent: paint }, { name: knot, parent: wood } ] }
            """);

        Assert.Equal(["level 'D': class 'knot' has unknown parent 'wood'"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_AmbiguousParentName_AsksForThePath()
    {
        const string Levels = """
            levels:
              - { name: A, classes: [ { name: steel }, { name: pcb } ] }
              - { name: B, classes: [ { name: surface, parent: steel }, { name: surface, parent: pcb } ] }
            """;

        var e = LoadFails("t.yaml", Levels + """

              - { name: C, classes: [ { name: crazing, parent: surface }, { name: open, parent: pcb/surface }, { name: short, parent: pcb/surface } ] }
            """);
        var ok = DatasetLoader.LoadTreeFile(WriteFile("ok.yaml", Levels + """

              - { name: C, classes: [ { name: crazing, parent: steel/surface }, { name: open, parent: pcb/surface }, { name: short, parent: pcb/surface } ] }
            """));

        Assert.Equal(
        [
            "level 'C': parent 'surface' of class 'crazing' is ambiguous; name it by path (steel/surface or pcb/surface)",
            "class 'steel/surface' has no children at level 'C' (every branch must reach the last level)",
        ], e.Errors);
        Assert.Equal(["steel/surface/crazing", "pcb/surface/open", "pcb/surface/short"], ok.Leaves.Select(l => l.Path));
        Assert.Equal(["steel/surface", "pcb/surface"], ok.Levels[1].Classes.Select(c => c.Label));
    }

    [Fact]
    public void LoadTreeFile_SingleClassLevel_IsAnErrorUnlessAllowed()
    {
        const string Text = """
            levels:
              - { name: Root, classes: [ { name: all } ] }
              - { name: Defect, classes: [ { name: x, parent: all }, { name: y, parent: all } ] }
            """;

        var e = LoadFails("t.yaml", Text);
        var tree = DatasetLoader.LoadTreeFile(WriteFile("ok.yaml", Text), allowSingleClassLevels: true);

        Assert.Equal(["level 'Root' has a single class ('all'): a model cannot learn anything there; drop the level or add classes"], e.Errors);
        Assert.Equal([1, 2], tree.LevelSizes);
    }

    [Fact]
    public void LoadTreeFile_NonLeafWithoutChildren_IsReported()
    {
        var e = LoadFails("t.json", """
            { "levels": [ { "name": "M", "classes": [ { "name": "metal" }, { "name": "paint" }, { "name": "wood" } ] },
                          { "name": "D", "classes": [ { "name": "dent", "parent": "metal" }, { "name": "run", "parent": "metal" } ] } ] }
            """);

        Assert.Equal(
        [
            "class 'paint' has no children at level 'D' (every branch must reach the last level)",
            "class 'wood' has no children at level 'D' (every branch must reach the last level)",
        ], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_ClassWithoutParentBelowTheFirstLevel_IsReported()
    {
        var e = LoadFails("t.yaml", """
            levels:
              - { name: M, classes: [ { name: a }, { name: b } ] }
              - { name: D, classes: [ { name: x, parent: a }, { name: y, parent: b }, { name: orphan } ] }
            """);

        Assert.Equal(["level 'D': class 'orphan' has no parent"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_ParentOnTheFirstLevel_IsReported()
    {
        var e = LoadFails("t.yaml", """
            levels:
              - { name: M, classes: [ { name: a, parent: sky }, { name: b } ] }
            """);

        Assert.Equal(["level 'M': class 'a' names parent 'sky', but the first level has no parents"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_BadClassNames_AreReported()
    {
        var e = LoadFails("t.json", """
            { "levels": [ { "name": "M", "classes": [ { "name": "a" }, { "name": "  " }, { "name": "b/c" }, { "name": "d" } ] } ] }
            """);

        Assert.Equal(
        [
            "level 'M': a class has an empty name",
            "level 'M': class name 'b/c' contains '/', which separates path parts",
        ], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_LevelNameUsedTwice_IsReported()
    {
        var e = LoadFails("t.yaml", """
            levels:
              - { name: Defect, classes: [ { name: a }, { name: b } ] }
              - { name: Defect, classes: [ { name: x, parent: a }, { name: y, parent: b } ] }
            """);

        Assert.Equal(["level name 'Defect' is used twice"], e.Errors);
    }

    [Theory]
    [InlineData("t.json", """{ "levels": [] }""")]
    [InlineData("t.json", """{ "levels": null }""")]
    [InlineData("t.json", """{ }""")]
    [InlineData("t.yaml", "levels: []")]
    [InlineData("t.yaml", "levels:")]
    public void LoadTreeFile_NoLevels_IsReported(string name, string text)
    {
        var e = LoadFails(name, text);

        Assert.Equal(["the tree has no levels"], e.Errors);
    }

    [Theory]
    [InlineData("t.json", """{ "levels": [ { "name": "M", "classes": [] } ] }""")]
    [InlineData("t.json", """{ "levels": [ { "name": "M", "classes": null } ] }""")]
    [InlineData("t.yaml", "levels:\n  - name: M\n    classes:\n")]
    [InlineData("t.yaml", "levels:\n  - name: M\n")]
    public void LoadTreeFile_LevelWithoutClasses_IsReported(string name, string text)
    {
        var e = LoadFails(name, text);

        Assert.Equal(["level 'M' has no classes"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_NullEntries_AreReportedNotCrashes()
    {
        var e = LoadFails("t.json", """{ "levels": [ { "name": "M", "classes": [ { "name": "a" }, null, { "name": "b" } ] }, null ] }""");

        Assert.Equal(["level 'M': a class entry is empty", "level 'L2' has no classes"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_MissingFile_IsReported()
    {
        var missing = Path.Combine(_temp.Path, "missing.json");

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadTreeFile(missing));

        Assert.StartsWith($"cannot read tree file '{missing}': ", Assert.Single(e.Errors));
    }

    [Fact]
    public void LoadTreeFile_DirectoryInsteadOfFile_IsReportedAsUnreadable()
    {
        // Tests run as root in CI, so permission bits cannot make a file unreadable; a directory can't be read either.
        var dir = Directory.CreateDirectory(Path.Combine(_temp.Path, "tree.yaml")).FullName;

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadTreeFile(dir));

        Assert.StartsWith($"cannot read tree file '{dir}': ", Assert.Single(e.Errors));
    }

    [Theory]
    [InlineData("t.json", """{ "levels": [ { "name": "M", "classes": [ { "name": "a" } """)]
    [InlineData("t.json", """{ "levels": 5 }""")]
    [InlineData("t.json", "not json at all")]
    [InlineData("t.txt", """levels: [ { name: a } ]""")]
    [InlineData("t.yaml", "levels:\n  - name: M\n    classes: [ { name: a }\n")]
    [InlineData("t.yaml", "levels: 5")]
    [InlineData("t.yaml", "levels:\n  - name: M\n   classes: bad indent\n")]
    public void LoadTreeFile_MalformedText_IsReported(string name, string text)
    {
        var path = WriteFile(name, text);

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadTreeFile(path));

        Assert.StartsWith($"{path} is not a valid tree file: ", Assert.Single(e.Errors));
    }

    [Theory]
    [InlineData("t.json", "null")]
    [InlineData("t.yaml", "")]
    [InlineData("t.yaml", "# only a comment\n")]
    public void LoadTreeFile_EmptyDocument_IsReported(string name, string text)
    {
        var path = WriteFile(name, text);

        var e = Assert.Throws<TaxonomyException>(() => DatasetLoader.LoadTreeFile(path));

        Assert.Equal([$"{path} is empty"], e.Errors);
    }

    [Fact]
    public void LoadTreeFile_SeveralProblems_AreReportedTogether()
    {
        var e = LoadFails("t.yaml", """
            levels:
              - { name: M, classes: [ { name: metal }, { name: paint }, { name: metal } ] }
              - { name: D, classes: [ { name: dent, parent: metal }, { name: knot, parent: wood } ] }
            """);

        Assert.Equal(
        [
            "level 'M': class 'metal' is defined twice",
            "level 'D': class 'knot' has unknown parent 'wood'",
            "level 'D' has a single class ('metal/dent'): a model cannot learn anything there; drop the level or add classes",
            "class 'paint' has no children at level 'D' (every branch must reach the last level)",
        ], e.Errors);
        Assert.All(e.Errors, x => Assert.Contains(x, e.Message));
    }

    [Fact]
    public void ToJson_RoundTrip_KeepsPathsDisplayNamesAndLabels()
    {
        var tree = DatasetLoader.LoadTreeFile(WriteFile("tree.json", TwoLevelJson));

        var json = TaxonomyLoader.ToJson(tree);
        var back = TaxonomyLoader.FromJson(json);

        Assert.Equal(json, TaxonomyLoader.ToJson(back));
        Assert.Equal(tree.Leaves.Select(l => (l.Path, l.Label, l.DisplayName, l.ParentIndex)), back.Leaves.Select(l => (l.Path, l.Label, l.DisplayName, l.ParentIndex)));
        // Parents are written by path, so a duplicated parent name still round-trips.
        Assert.Contains("\"parent\": \"paint\"", json);
        Assert.DoesNotContain("\"display\": null", json);
    }
}
