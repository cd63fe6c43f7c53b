namespace FmaEdge.Vision;

/// <summary>An image that cannot be used, with a short machine-readable <see cref="Reason"/> code
/// (see <see cref="DecodeFailure"/>) and a human sentence in <see cref="Exception.Message"/>.</summary>
public sealed class ImageDecodeException(string reason, string message) : Exception(message)
{
    /// <summary>Short code: one of the <see cref="DecodeFailure"/> constants.</summary>
    public string Reason { get; } = reason;
}

/// <summary>Reason codes for images set aside. Stable: they appear in events, reason files and status.</summary>
public static class DecodeFailure
{
    public const string Empty = "empty";
    public const string Unreadable = "unreadable";
    public const string NotAnImage = "not-an-image";
    public const string Truncated = "truncated";
    public const string TooLarge = "too-large";
    public const string TooSmall = "too-small";
    public const string Unsupported = "unsupported";
    public const string Undecodable = "undecodable";
}
