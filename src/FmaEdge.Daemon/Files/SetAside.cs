using System.Globalization;
using System.Text;

namespace FmaEdge.Daemon.Files;

/// <summary>Moving a finished or refused file out of a watched folder, with its reason beside it
/// (<c>&lt;name&gt;.reason.txt</c>). One implementation for images (done/, failed/) and model drops (rejected/).</summary>
public static class SetAside
{
    public const string ReasonSuffix = ".reason.txt";

    // Linux NAME_MAX: a longer name cannot be created (ENAMETOOLONG).
    private const int MaxNameBytes = 255;

    /// <summary>Moves <paramref name="path"/> (a file, directory or link) into <paramref name="dir"/> under a free name,
    /// writing <paramref name="reason"/> first when given, so a set-aside file never lacks its reason. When the move fails
    /// while the original is still in place, nothing partial is left in <paramref name="dir"/> and the error is thrown
    /// (<see cref="IOException"/> or <see cref="UnauthorizedAccessException"/>). Returns where it went.</summary>
    public static async Task<string> MoveAsync(string path, string dir, string? reason, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(dir);
        var target = UniqueTarget(dir, Path.GetFileName(path));
        try
        {
            if (reason is not null)
            {
                await WriteReasonAsync(target, reason, cancellationToken);
            }

            MoveEntry(path, target);
            return target;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // A move across file systems copies: never leave a partial copy behind while the original is still here.
            if (StableFileTracker.Probe(path) is not null)
            {
                TryDelete(target);
                TryDelete(ReasonPath(target));
            }

            throw;
        }
    }

    /// <summary>Writes the reason for <paramref name="target"/> (see <see cref="ReasonPath"/>); when the target's name
    /// had to be shortened for it, the full name is written inside.</summary>
    public static async Task WriteReasonAsync(string target, string reason, CancellationToken cancellationToken)
    {
        var name = Path.GetFileName(target);
        var text = reason.EndsWith('\n') ? reason : reason + "\n";
        if (FitName(name, ReasonSuffix) != name)
        {
            text += "file: " + name + "\n";
        }

        await File.WriteAllTextAsync(ReasonPath(target), text, cancellationToken);
    }

    /// <summary><c>&lt;target&gt;.reason.txt</c>, shortened to fit the 255-byte limit of Linux file names.</summary>
    public static string ReasonPath(string target) =>
        Path.Combine(Path.GetDirectoryName(target)!, FitName(Path.GetFileName(target), ReasonSuffix) + ReasonSuffix);

    /// <summary>A path in <paramref name="dir"/> where nothing is yet: <c>name</c>, else <c>name.1.ext</c>, <c>name.2.ext</c>
    /// ..., shortened when the number would push a long name past the file-name limit.</summary>
    public static string UniqueTarget(string dir, string name)
    {
        var target = Path.Combine(dir, name);
        for (var i = 1; StableFileTracker.Probe(target) is not null; i++)
        {
            var tail = $".{i}{Path.GetExtension(name)}";
            target = Path.Combine(dir, FitName(Path.GetFileNameWithoutExtension(name), tail) + tail);
        }

        return target;
    }

    /// <summary>The longest prefix of <paramref name="name"/> that, followed by <paramref name="suffix"/>, fits in 255
    /// UTF-8 bytes (whole characters only).</summary>
    public static string FitName(string name, string suffix)
    {
        var budget = MaxNameBytes - Encoding.UTF8.GetByteCount(suffix);
        if (Encoding.UTF8.GetByteCount(name) <= budget)
        {
            return name;
        }

        var e = StringInfo.GetTextElementEnumerator(name);
        var kept = new StringBuilder();
        var used = 0;
        while (e.MoveNext())
        {
            var element = (string)e.Current;
            var n = Encoding.UTF8.GetByteCount(element);
            if (used + n > budget)
            {
                break;
            }

            kept.Append(element);
            used += n;
        }

        return kept.ToString();
    }

    /// <summary>Moves a file, directory or symbolic link (the link itself, never its target).</summary>
    public static void MoveEntry(string path, string target)
    {
        if (new FileInfo(path).LinkTarget is { } link)
        {
            // File.Move wants an existing target for links on some runtimes; recreating the link is exact and safe.
            File.CreateSymbolicLink(target, link);
            File.Delete(path);
        }
        else if (Directory.Exists(path))
        {
            Directory.Move(path, target);
        }
        else
        {
            File.Move(path, target);
        }
    }

    /// <summary>Deletes a file if it can; a clean-up that fails is not an error of its own.</summary>
    public static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }
}
