namespace FmaEdge.Core.Taxonomy;

/// <summary>Turns a <see cref="TaxonomyDocument"/> into a validated <see cref="CategoryTree"/>, reporting
/// every problem at once. Not thread-safe; use one per build.</summary>
public static class TaxonomyBuilder
{
    /// <summary>Validates and builds. Throws <see cref="TaxonomyException"/> listing every problem.</summary>
    /// <param name="allowSingleClassLevels">A level with one class teaches a model nothing; the trainer
    /// refuses it, but a model file may legitimately carry one.</param>
    public static CategoryTree Build(TaxonomyDocument doc, bool allowSingleClassLevels = false)
    {
        var errors = new List<string>();
        var levels = new List<TaxonomyLevel>();
        // Documents come from user files: a null list or entry (e.g. "classes:" left empty in YAML) must be
        // reported as a problem, not crash with a NullReferenceException.
        if (doc.Levels is null || doc.Levels.Count == 0)
        {
            throw new TaxonomyException(["the tree has no levels"]);
        }

        var levelNames = new HashSet<string>(StringComparer.Ordinal);
        for (var l = 0; l < doc.Levels.Count; l++)
        {
            var levelDoc = doc.Levels[l] ?? new TaxonomyDocument.LevelDoc();
            var levelName = string.IsNullOrWhiteSpace(levelDoc.Name) ? $"L{l + 1}" : levelDoc.Name.Trim();
            if (!levelNames.Add(levelName))
            {
                errors.Add($"level name '{levelName}' is used twice");
            }

            var classes = new List<TaxonomyClass>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var parents = l > 0 ? levels[l - 1].Classes : null;
            foreach (var c in levelDoc.Classes ?? [])
            {
                if (c is null)
                {
                    errors.Add($"level '{levelName}': a class entry is empty");
                    continue;
                }

                var name = c.Name?.Trim() ?? "";
                if (name.Length == 0)
                {
                    errors.Add($"level '{levelName}': a class has an empty name");
                    continue;
                }

                if (name.Contains('/'))
                {
                    errors.Add($"level '{levelName}': class name '{name}' contains '/', which separates path parts");
                    continue;
                }

                var parentIndex = -1;
                var parentPath = "";
                if (parents is null)
                {
                    if (!string.IsNullOrEmpty(c.Parent))
                    {
                        errors.Add($"level '{levelName}': class '{name}' names parent '{c.Parent}', but the first level has no parents");
                    }
                }
                else if (string.IsNullOrEmpty(c.Parent))
                {
                    errors.Add($"level '{levelName}': class '{name}' has no parent");
                    continue;
                }
                else
                {
                    var byPath = parents.FirstOrDefault(p => p.Path == c.Parent);
                    var byName = parents.Where(p => p.Name == c.Parent).ToList();
                    if (byPath is not null)
                    {
                        parentIndex = byPath.Index;
                    }
                    else if (byName.Count == 1)
                    {
                        parentIndex = byName[0].Index;
                    }
                    else if (byName.Count > 1)
                    {
                        errors.Add($"level '{levelName}': parent '{c.Parent}' of class '{name}' is ambiguous; name it by path ({string.Join(" or ", byName.Select(p => p.Path))})");
                        continue;
                    }
                    else
                    {
                        errors.Add($"level '{levelName}': class '{name}' has unknown parent '{c.Parent}'");
                        continue;
                    }

                    parentPath = parents[parentIndex].Path + "/";
                }

                var path = parentPath + name;
                if (!seen.Add(path))
                {
                    errors.Add($"level '{levelName}': class '{path}' is defined twice");
                    continue;
                }

                classes.Add(new TaxonomyClass(l, classes.Count, name, path, parentIndex,
                    string.IsNullOrWhiteSpace(c.Display) ? null : c.Display.Trim()));
            }

            if (classes.Count == 0)
            {
                errors.Add($"level '{levelName}' has no classes");
            }
            else if (classes.Count == 1 && !allowSingleClassLevels)
            {
                errors.Add($"level '{levelName}' has a single class ('{classes[0].Path}'): a model cannot learn anything there; drop the level or add classes");
            }

            // A level with no classes is reported once above, not once more for every parent above it.
            if (parents is not null && classes.Count > 0)
            {
                foreach (var p in parents.Where(p => classes.All(c => c.ParentIndex != p.Index)))
                {
                    errors.Add($"class '{p.Path}' has no children at level '{levelName}' (every branch must reach the last level)");
                }
            }

            levels.Add(new TaxonomyLevel(l, levelName, classes.AsReadOnly()));
        }

        if (errors.Count > 0)
        {
            throw new TaxonomyException(errors);
        }

        return new CategoryTree(levels);
    }
}
