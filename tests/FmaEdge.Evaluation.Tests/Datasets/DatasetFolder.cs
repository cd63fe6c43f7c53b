using FmaEdge.TestSupport;

namespace FmaEdge.Evaluation.Tests.Datasets;

/// <summary>A real dataset folder in a temp dir, filled with real PNGs copied from the shared defect set.</summary>
internal sealed class DatasetFolder : IDisposable
{
    private static readonly Lazy<IReadOnlyList<string>> Pool = new(() => TestPaths.SampleImages("train", 1));
    private readonly TempFolder _temp = new("core-ds");
    private int _next;

    public string Root => _temp.Path;

    /// <summary>A leaf folder ("a/b/c") with <paramref name="images"/> real images.</summary>
    public DatasetFolder Leaf(string relative, int images = 2)
    {
        Directory.CreateDirectory(Path.Combine(Root, relative));
        for (var i = 0; i < images; i++)
        {
            Image($"{relative}/img{i:D3}.png");
        }

        return this;
    }

    /// <summary>Copies one real image to a relative path (any folder).</summary>
    public string Image(string relative)
    {
        var pool = Pool.Value;
        var dst = _temp.File(relative);
        File.Copy(pool[_next++ % pool.Count], dst);
        return dst;
    }

    /// <summary>An empty folder.</summary>
    public DatasetFolder Dir(string relative)
    {
        Directory.CreateDirectory(Path.Combine(Root, relative));
        return this;
    }

    /// <summary>A text file (not an image).</summary>
    public DatasetFolder Text(string relative, string content = "notes")
    {
        File.WriteAllText(_temp.File(relative), content);
        return this;
    }

    public void Dispose() => _temp.Dispose();
}
