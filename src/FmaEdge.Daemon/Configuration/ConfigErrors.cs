namespace FmaEdge.Daemon.Configuration;

/// <summary>Problems found in a configuration, collected so the operator sees all of them at once (key path + why).</summary>
public sealed class ConfigErrors
{
    private readonly List<string> _errors = [];

    public IReadOnlyList<string> All => _errors;

    public void Add(string error) => _errors.Add(error);

    /// <summary>Adds an error when <paramref name="value"/> is outside <paramref name="min"/>..<paramref name="max"/>.</summary>
    public void Range(string key, long value, long min, long max)
    {
        if (value < min || value > max)
        {
            _errors.Add($"{key} = {value} is outside {min}..{max}");
        }
    }
}
