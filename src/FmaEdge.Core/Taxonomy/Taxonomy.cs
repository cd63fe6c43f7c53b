

namespace FmaEdge.Core.Taxonomy;

/// <summary>One class of the tree. Identified by <see cref="Path"/> (names joined by '/'), so one name
/// may appear under two parents as two classes. Immutable; safe to share between threads.</summary>
public sealed record TaxonomyClass(int Level, int Index, string Name, string Path, int ParentIndex, string? DisplayName)
{
    /// <summary>What results show: the display name if given, else the name, else (when the name is not
    /// unique in its level) the path. Set by <see cref="CategoryTree"/>.</summary>
    public string Label { get; internal set; } = DisplayName ?? Name;
}

/// <summary>One level of the tree (e.g. "DefectLocate") with its classes in index order.</summary>
public sealed record TaxonomyLevel(int Depth, string Name, IReadOnlyList<TaxonomyClass> Classes)
{
    /// <summary>Number of classes in this level (the width of this level's model output).</summary>
    public int Count => Classes.Count;
}

/// <summary>A validated category tree: levels 0..L-1 from coarse to fine; every class at level l &gt; 0 has a
/// parent at level l-1, every non-leaf class has children, all leaves sit at the last level.
/// Immutable and thread-safe. Build it with <see cref="TaxonomyBuilder"/> or <see cref="TaxonomyLoader"/>.</summary>
public sealed class CategoryTree
{
    private readonly int[][][] _children;   // [level][class] -> child indices at level+1
    private readonly int[][] _leafPaths;    // [leaf] -> class index at every level
    private readonly Dictionary<string, TaxonomyClass> _byPath;

    internal CategoryTree(IReadOnlyList<TaxonomyLevel> levels)
    {
        Levels = levels;
        _byPath = levels.SelectMany(l => l.Classes).ToDictionary(c => c.Path, StringComparer.Ordinal);
        _children = new int[levels.Count][][];
        for (var l = 0; l < levels.Count; l++)
        {
            _children[l] = new int[levels[l].Count][];
            for (var i = 0; i < levels[l].Count; i++)
            {
                _children[l][i] = l + 1 < levels.Count
                    ? levels[l + 1].Classes.Where(c => c.ParentIndex == i).Select(c => c.Index).ToArray()
                    : [];
            }
        }

        var leaves = levels[^1].Classes;
        _leafPaths = new int[leaves.Count][];
        foreach (var leaf in leaves)
        {
            var path = new int[levels.Count];
            var idx = leaf.Index;
            for (var l = levels.Count - 1; l >= 0; l--)
            {
                path[l] = idx;
                idx = levels[l].Classes[idx].ParentIndex;
            }

            _leafPaths[leaf.Index] = path;
        }

        // A name that occurs twice in one level is shown by its path, so labels are never ambiguous.
        foreach (var level in levels)
        {
            var dupes = level.Classes.GroupBy(c => c.DisplayName ?? c.Name).Where(g => g.Count() > 1).SelectMany(g => g);
            foreach (var c in dupes)
            {
                c.Label = c.Path;
            }
        }
    }

    /// <summary>The levels from coarse (0) to fine (Depth-1).</summary>
    public IReadOnlyList<TaxonomyLevel> Levels { get; }

    /// <summary>Number of levels.</summary>
    public int Depth => Levels.Count;

    /// <summary>The classes of the last level.</summary>
    public IReadOnlyList<TaxonomyClass> Leaves => Levels[^1].Classes;

    /// <summary>Class counts per level, coarse to fine.</summary>
    public int[] LevelSizes => Levels.Select(l => l.Count).ToArray();

    /// <summary>Parent index of class <paramref name="index"/> at <paramref name="level"/> (-1 at level 0).</summary>
    public int ParentOf(int level, int index) => Levels[level].Classes[index].ParentIndex;

    /// <summary>Child indices (at level+1) of a class; empty at the last level.</summary>
    public IReadOnlyList<int> ChildrenOf(int level, int index) => _children[level][index];

    /// <summary>The class index at every level on the way from the root to <paramref name="leaf"/>.</summary>
    public ReadOnlySpan<int> PathOfLeaf(int leaf) => _leafPaths[leaf];

    /// <summary>Ancestor of <paramref name="leaf"/> at <paramref name="level"/>.</summary>
    public int AncestorOfLeaf(int leaf, int level) => _leafPaths[leaf][level];

    /// <summary>True when (parentLevel, parent) is an ancestor of (or equal to) (level, index).</summary>
    public bool IsAncestor(int parentLevel, int parent, int level, int index)
    {
        while (level > parentLevel)
        {
            index = ParentOf(level, index);
            level--;
        }

        return level == parentLevel && index == parent;
    }

    /// <summary>True when the per-level indices form a valid root-to-leaf path.</summary>
    public bool IsConsistentPath(ReadOnlySpan<int> perLevel)
    {
        for (var l = 1; l < perLevel.Length; l++)
        {
            if (ParentOf(l, perLevel[l]) != perLevel[l - 1])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Class by its path ("a/b/c"), or null.</summary>
    public TaxonomyClass? FindByPath(string path) => _byPath.GetValueOrDefault(path);

    /// <summary>Leaf index for a path or (when unique) a bare leaf name; null when unknown or ambiguous.</summary>
    public int? FindLeaf(string pathOrName)
    {
        if (_byPath.TryGetValue(pathOrName, out var c) && c.Level == Depth - 1)
        {
            return c.Index;
        }

        var matches = Leaves.Where(l => l.Name == pathOrName).ToList();
        return matches.Count == 1 ? matches[0].Index : null;
    }

    /// <summary>Height of the lowest common ancestor of two leaves: 0 when equal, Depth when they only
    /// share the root (mistake severity, 1..Depth for a wrong leaf).</summary>
    public int LcaHeight(int leafA, int leafB)
    {
        var a = PathOfLeaf(leafA);
        var b = PathOfLeaf(leafB);
        for (var l = Depth - 1; l >= 0; l--)
        {
            if (a[l] == b[l])
            {
                return Depth - 1 - l;
            }
        }

        return Depth;
    }

    /// <summary>0/1 matrix [leaves x classesAtLevel] mapping each leaf to its ancestor at a level.</summary>
    public float[,] LeafToLevelMatrix(int level)
    {
        var m = new float[Leaves.Count, Levels[level].Count];
        for (var leaf = 0; leaf < Leaves.Count; leaf++)
        {
            m[leaf, AncestorOfLeaf(leaf, level)] = 1f;
        }

        return m;
    }

    /// <summary>The tree in its canonical serialisable form (what model files embed).</summary>
    public TaxonomyDocument ToDocument() => new()
    {
        Levels = Levels.Select(l => new TaxonomyDocument.LevelDoc
        {
            Name = l.Name,
            Classes = l.Classes.Select(c => new TaxonomyDocument.ClassDoc
            {
                Name = c.Name,
                Parent = c.ParentIndex < 0 ? null : Levels[c.Level - 1].Classes[c.ParentIndex].Path,
                Display = c.DisplayName,
            }).ToList(),
        }).ToList(),
    };

    public override string ToString() =>
        string.Join(" -> ", Levels.Select(l => $"{l.Name}({l.Count})"));
}

/// <summary>The serialisable form of a tree (JSON or YAML): levels, each with classes naming their parent
/// by path (or by name when that name is unique in the parent level).</summary>
public sealed class TaxonomyDocument
{
    public List<LevelDoc> Levels { get; set; } = [];

    public sealed class LevelDoc
    {
        public string Name { get; set; } = "";
        public List<ClassDoc> Classes { get; set; } = [];
    }

    public sealed class ClassDoc
    {
        public string Name { get; set; } = "";
        public string? Parent { get; set; }
        public string? Display { get; set; }
    }
}

/// <summary>All problems found in a tree or dataset, reported together.</summary>
public sealed class TaxonomyException(IReadOnlyList<string> errors)
    : Exception("Invalid category tree:\n  - " + string.Join("\n  - ", errors))
{
    /// <summary>Every problem found, one sentence each.</summary>
    public IReadOnlyList<string> Errors { get; } = errors;
}

