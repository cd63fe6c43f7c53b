namespace FmaEdge.TestSupport;

/// <summary>Where tests find real inputs: the repository, the shared defect dataset and the shipped model.</summary>
public static class TestPaths
{
    private static readonly Lazy<string> Root = new(() =>
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "FmaEdge.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("cannot find FmaEdge.sln above " + AppContext.BaseDirectory);
    });

    /// <summary>The repository root (the folder holding FmaEdge.sln).</summary>
    public static string RepoRoot => Root.Value;

    /// <summary>The real defect image set: $FMAEDGE_DATASET, else ../shared/datasets/defects beside the repo.
    /// Tests fail (not skip) when it is missing: they are meant to run on real images.</summary>
    public static string Dataset
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("FMAEDGE_DATASET");
            var candidates = new[] { env, Path.Combine(RepoRoot, "..", "shared", "datasets", "defects") };
            foreach (var c in candidates)
            {
                if (!string.IsNullOrEmpty(c) && Directory.Exists(Path.Combine(c, "train")))
                {
                    return Path.GetFullPath(c);
                }
            }

            throw new DirectoryNotFoundException("real defect dataset not found: set FMAEDGE_DATASET or place shared/ beside the repository");
        }
    }

    /// <summary>The training split of the real dataset.</summary>
    public static string DatasetTrain => Path.Combine(Dataset, "train");

    /// <summary>The validation split of the real dataset.</summary>
    public static string DatasetVal => Path.Combine(Dataset, "val");

    /// <summary>The demo model shipped in models/ (trained by fma-train on the real dataset).</summary>
    public static string DemoModel => Path.Combine(RepoRoot, "models", "defects-convnext_femto-128.onnx");

    /// <summary>A few real images per leaf of a split, in a stable order.</summary>
    public static IReadOnlyList<string> SampleImages(string split = "val", int perLeaf = 1) =>
        Directory.GetDirectories(Path.Combine(Dataset, split), "*", SearchOption.AllDirectories)
            .Where(d => Directory.GetDirectories(d).Length == 0)
            .Order(StringComparer.Ordinal)
            .SelectMany(d => Directory.GetFiles(d).Order(StringComparer.Ordinal).Take(perLeaf))
            .ToList();
}

/// <summary>A fresh folder under the system temp dir, deleted on dispose.</summary>
public sealed class TempFolder : IDisposable
{
    public TempFolder(string? prefix = null)
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"fmaedge-{prefix ?? "test"}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path);
    }

    /// <summary>The folder's full path.</summary>
    public string Path { get; }

    /// <summary>A path inside the folder (parents created).</summary>
    public string File(string relative)
    {
        var p = System.IO.Path.Combine(Path, relative);
        Directory.CreateDirectory(System.IO.Path.GetDirectoryName(p)!);
        return p;
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
            // A test that left a file open must not fail another test's clean-up.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
