using FmaEdge.Core.Taxonomy;
using YamlDotNet.Serialization;
using YamlDotNet.Serialization.NamingConventions;

namespace FmaEdge.Evaluation.Datasets;

/// <summary>Reads trees and labelled datasets from disk: a folder tree (ROOT/L1/.../leaf/*.png), an explicit
/// JSON or YAML tree file, and a CSV manifest (path,leaf). Every problem is reported at once through
/// <see cref="TaxonomyException"/>. Stateless and thread-safe.</summary>
public static class DatasetLoader
{
    /// <summary>Image file endings the trainer and daemon read (OpenCV decodes them all).</summary>
    public static readonly IReadOnlySet<string> ImageExtensions =
        new HashSet<string>([".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"], StringComparer.OrdinalIgnoreCase);

    /// <summary>Deepest folder nesting a scan follows; real trees are a handful of levels deep.</summary>
    public const int MaxFolderDepth = 32;

    /// <summary>True when the file name ends like an image.</summary>
    public static bool IsImageFile(string path) => ImageExtensions.Contains(Path.GetExtension(path));

    /// <summary>Parses a tree file (.json, .yaml or .yml) and validates it.</summary>
    public static CategoryTree LoadTreeFile(string file, bool allowSingleClassLevels = false)
    {
        string text;
        try
        {
            text = File.ReadAllText(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TaxonomyException([$"cannot read tree file '{file}': {e.Message}"]);
        }

        return TaxonomyBuilder.Build(ParseDocument(text, Path.GetExtension(file), file), allowSingleClassLevels);
    }

    /// <summary>Parses tree text; <paramref name="extension"/> picks JSON or YAML.</summary>
    private static TaxonomyDocument ParseDocument(string text, string extension, string source = "tree")
    {
        try
        {
            if (extension.ToLowerInvariant() is not (".yaml" or ".yml"))
            {
                return TaxonomyLoader.ParseJson(text, source);
            }

            var doc = new DeserializerBuilder().WithNamingConvention(UnderscoredNamingConvention.Instance)
                .IgnoreUnmatchedProperties().Build().Deserialize<TaxonomyDocument>(text);
            return doc ?? throw new TaxonomyException([$"{source} is empty"]);
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new TaxonomyException([$"{source} is not a valid tree file: {e.Message}"]);
        }
    }

    /// <summary>Scans ROOT/&lt;L1&gt;/.../&lt;leaf&gt;/images. With <paramref name="tree"/> given, folders must
    /// match its leaf paths (so train and val share class indices); otherwise the tree is inferred from
    /// the folders and named with <paramref name="levelNames"/> (default L1..Ln).</summary>
    public static LabeledDataset ScanFolder(string root, CategoryTree? tree = null, IReadOnlyList<string>? levelNames = null,
        bool allowSingleClassLevels = false)
    {
        var errors = new List<string>();
        if (!Directory.Exists(root))
        {
            throw new TaxonomyException([$"dataset folder '{root}' does not exist"]);
        }

        root = Path.GetFullPath(root);
        var leafDirs = new List<(string Rel, List<string> Files)>();
        var depths = new Dictionary<int, List<string>>();
        Walk(root, 0);

        void Walk(string dir, int depth)
        {
            // A symbolic link back up the tree would otherwise recurse until the stack overflows.
            if (depth > MaxFolderDepth)
            {
                errors.Add($"folder '{Path.GetRelativePath(root, dir)}' is more than {MaxFolderDepth} levels deep (a symbolic link loop?)");
                return;
            }

            string[] subdirs;
            string[] files;
            try
            {
                subdirs = Directory.GetDirectories(dir).Where(d => !Path.GetFileName(d).StartsWith('.')).Order(StringComparer.Ordinal).ToArray();
                files = Directory.GetFiles(dir).Order(StringComparer.Ordinal).ToArray();
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                errors.Add($"cannot read folder '{dir}': {e.Message}");
                return;
            }

            // Hidden files are skipped like hidden folders: macOS leaves "._name.png" AppleDouble files beside
            // copied images, which end like images but do not decode.
            var images = files.Where(f => IsImageFile(f) && !Path.GetFileName(f).StartsWith('.')).ToList();
            var rel = Path.GetRelativePath(root, dir).Replace('\\', '/');
            if (subdirs.Length == 0)
            {
                if (depth == 0)
                {
                    errors.Add($"'{root}' has no class folders: expected ROOT/<level 1>/.../<leaf>/<images>");
                    return;
                }

                if (images.Count == 0)
                {
                    errors.Add($"class folder '{rel}' holds no images ({string.Join(", ", ImageExtensions)})");
                }

                leafDirs.Add((rel, images));
                if (!depths.TryGetValue(depth, out var list))
                {
                    depths[depth] = list = [];
                }

                list.Add(rel);
                return;
            }

            // Images beside class folders have no leaf; at the root too, silently dropping them would lose data.
            if (images.Count > 0)
            {
                errors.Add($"folder '{(depth == 0 ? root : rel)}' holds both images and class folders; images belong only in leaf folders");
            }

            foreach (var s in subdirs)
            {
                Walk(s, depth + 1);
            }
        }

        if (depths.Count > 1)
        {
            var byDepth = depths.OrderByDescending(d => d.Value.Count).ToList();
            var usual = byDepth[0].Key;
            foreach (var (depth, dirs) in byDepth.Skip(1))
            {
                errors.Add($"uneven depth: {dirs.Count} leaf folder(s) at depth {depth} but most are at depth {usual}, e.g. '{dirs[0]}'");
            }
        }

        if (errors.Count > 0)
        {
            throw new TaxonomyException(errors);
        }

        var nLevels = depths.Keys.Single();
        if (tree is null)
        {
            if (levelNames is not null && levelNames.Count != nLevels)
            {
                throw new TaxonomyException([$"{levelNames.Count} level names given but the folders are {nLevels} levels deep"]);
            }

            var doc = new TaxonomyDocument();
            for (var l = 0; l < nLevels; l++)
            {
                var seen = new HashSet<string>(StringComparer.Ordinal);
                var level = new TaxonomyDocument.LevelDoc { Name = levelNames?[l] ?? $"L{l + 1}" };
                foreach (var (rel, _) in leafDirs)
                {
                    var parts = rel.Split('/');
                    var path = string.Join('/', parts.Take(l + 1));
                    if (seen.Add(path))
                    {
                        level.Classes.Add(new TaxonomyDocument.ClassDoc
                        {
                            Name = parts[l],
                            Parent = l == 0 ? null : string.Join('/', parts.Take(l)),
                        });
                    }
                }

                doc.Levels.Add(level);
            }

            tree = TaxonomyBuilder.Build(doc, allowSingleClassLevels);
        }
        else if (tree.Depth != nLevels)
        {
            throw new TaxonomyException([$"the folders are {nLevels} levels deep but the tree has {tree.Depth} levels"]);
        }

        var images = new List<LabeledImage>();
        foreach (var (rel, files) in leafDirs)
        {
            var leaf = tree.FindByPath(rel);
            if (leaf is null || leaf.Level != tree.Depth - 1)
            {
                errors.Add($"folder '{rel}' is not a leaf of the tree");
                continue;
            }

            images.AddRange(files.Select(f => new LabeledImage(f, leaf.Index)));
        }

        if (errors.Count > 0)
        {
            throw new TaxonomyException(errors);
        }

        return new LabeledDataset(tree, images, root);
    }

    /// <summary>Reads a CSV manifest with columns path,leaf (header optional; leaf as a path or a unique
    /// leaf name; relative paths resolve against the manifest's folder; every image must exist).</summary>
    public static LabeledDataset LoadManifest(string csvFile, CategoryTree tree)
    {
        var errors = new List<string>();
        var images = new List<LabeledImage>();
        var baseDir = Path.GetDirectoryName(Path.GetFullPath(csvFile))!;
        string[] lines;
        try
        {
            lines = File.ReadAllLines(csvFile);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new TaxonomyException([$"cannot read manifest '{csvFile}': {e.Message}"]);
        }

        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#') || (i == 0 && line.StartsWith("path,", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }

            var comma = line.LastIndexOf(',');
            if (comma <= 0)
            {
                errors.Add($"{csvFile}:{i + 1}: expected 'path,leaf'");
                continue;
            }

            var path = line[..comma].Trim().Trim('"');
            var leafName = line[(comma + 1)..].Trim().Trim('"');
            var leaf = tree.FindLeaf(leafName);
            if (leaf is null)
            {
                // Say which of the three it is: the fix differs (fill it in, correct it, or write the path).
                var sameName = tree.Leaves.Where(l => l.Name == leafName).Select(l => l.Path).ToList();
                errors.Add(leafName.Length == 0 ? $"{csvFile}:{i + 1}: the leaf is empty"
                    : sameName.Count > 1 ? $"{csvFile}:{i + 1}: leaf '{leafName}' is ambiguous; name it by path ({string.Join(" or ", sameName)})"
                    : $"{csvFile}:{i + 1}: unknown leaf '{leafName}'");
                continue;
            }

            var full = Path.IsPathRooted(path) ? path : Path.Combine(baseDir, path);
            if (!File.Exists(full))
            {
                errors.Add($"{csvFile}:{i + 1}: image '{path}' does not exist");
                continue;
            }

            images.Add(new LabeledImage(full, leaf.Value));
        }

        var counts = new int[tree.Leaves.Count];
        foreach (var img in images)
        {
            counts[img.Leaf]++;
        }

        var empty = Enumerable.Range(0, tree.Leaves.Count).Where(l => counts[l] == 0).ToList();
        errors.AddRange(empty.Select(l => $"leaf '{tree.Leaves[l].Path}' has no images in the manifest"));
        if (errors.Count > 0)
        {
            throw new TaxonomyException(errors);
        }

        return new LabeledDataset(tree, images, baseDir);
    }
}
