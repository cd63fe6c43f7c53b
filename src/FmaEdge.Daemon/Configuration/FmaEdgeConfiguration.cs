using Microsoft.Extensions.Configuration;

namespace FmaEdge.Daemon.Configuration;

/// <summary>Builds the layered configuration (shipped defaults, then /etc/fma-edge/*.json or one --config file, then
/// FMAEDGE__ environment variables) and binds + validates <see cref="FmaEdgeOptions"/>. Stateless and thread-safe.</summary>
public static class FmaEdgeConfiguration
{
    /// <summary>The defaults file shipped beside the executable.</summary>
    public const string DefaultsFile = "fma-edge.json";

    /// <summary>Folder of override files when no --config is given ($CONFIGURATION_DIRECTORY under systemd).</summary>
    public static string SystemConfigDir =>
        Environment.GetEnvironmentVariable("CONFIGURATION_DIRECTORY")?.Split(':')[0] is { Length: > 0 } d ? d : "/etc/fma-edge";

    /// <summary>Layers configuration. <paramref name="configFile"/> replaces the system folder scan when given.</summary>
    public static IConfigurationRoot Build(string? configFile = null, string? systemConfigDir = null, IDictionary<string, string?>? overrides = null)
    {
        var b = new ConfigurationBuilder();
        b.AddJsonFile(Path.Combine(AppContext.BaseDirectory, DefaultsFile), optional: false, reloadOnChange: false);
        if (configFile is not null)
        {
            if (!File.Exists(configFile))
            {
                throw new ConfigurationErrorsException([$"--config file '{configFile}' does not exist"]);
            }

            b.AddJsonFile(Path.GetFullPath(configFile), optional: false, reloadOnChange: false);
        }
        else
        {
            var dir = systemConfigDir ?? SystemConfigDir;
            if (Directory.Exists(dir))
            {
                foreach (var f in Directory.GetFiles(dir, "*.json").Order(StringComparer.Ordinal))
                {
                    b.AddJsonFile(f, optional: false, reloadOnChange: false);
                }
            }
        }

        // FMAEDGE__Inference__MaxBatch=4 maps to FmaEdge:Inference:MaxBatch (keys are case-insensitive).
        b.AddEnvironmentVariables();
        if (overrides is not null)
        {
            b.AddInMemoryCollection(overrides);
        }

        return b.Build();
    }

    /// <summary>Binds the "FmaEdge" section; throws <see cref="ConfigurationErrorsException"/> listing every error
    /// (unknown keys, unparsable values and out-of-bounds settings together).</summary>
    public static FmaEdgeOptions Bind(IConfiguration configuration)
    {
        var section = configuration.GetSection(FmaEdgeOptions.Section);
        var errors = new List<string>();
        var badValues = new List<string>();
        UnknownKeys(section, typeof(FmaEdgeOptions), errors, badValues);
        var options = new FmaEdgeOptions();
        try
        {
            // A value outside a closed set is reported above by name; the rest still binds, so every other problem is
            // listed in the same round.
            (badValues.Count == 0 ? section : Without(configuration, badValues).GetSection(FmaEdgeOptions.Section)).Bind(options);
        }
        catch (InvalidOperationException e)
        {
            errors.Add(e.InnerException is null ? e.Message : $"{e.Message} ({e.InnerException.Message})");
        }

        errors.AddRange(FmaEdgeOptionsValidator.Validate(options));
        return errors.Count > 0 ? throw new ConfigurationErrorsException(errors) : options;
    }

    /// <summary>The configuration without the keys in <paramref name="paths"/>.</summary>
    private static IConfiguration Without(IConfiguration configuration, List<string> paths) =>
        new ConfigurationBuilder().AddInMemoryCollection(configuration.AsEnumerable()
            .Where(kv => kv.Value is not null && !paths.Contains(kv.Key, StringComparer.OrdinalIgnoreCase))).Build();

    /// <summary>A misspelt key would silently keep its default, and a value outside a closed set (an enum) would stop the
    /// binding at the first one: report both by name (<paramref name="badValues"/> collects the paths of such values).</summary>
    private static void UnknownKeys(IConfigurationSection section, Type type, List<string> errors, List<string> badValues)
    {
        foreach (var child in section.GetChildren())
        {
            var prop = type.GetProperty(child.Key, System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance | System.Reflection.BindingFlags.IgnoreCase);
            if (prop is null || !prop.CanWrite)
            {
                errors.Add($"{child.Path} is not a known setting");
                continue;
            }

            var t = prop.PropertyType;
            if (t.IsEnum)
            {
                // Names only (the binder would also take numbers), any case; shown as the docs spell them.
                var names = Enum.GetNames(t);
                if (child.Value is not { } v || !names.Contains(v, StringComparer.OrdinalIgnoreCase))
                {
                    var allowed = names.Select(n => n.ToLowerInvariant()).ToList();
                    errors.Add($"{child.Path} '{child.Value}' is not {string.Join(", ", allowed[..^1])} or {allowed[^1]}");
                    badValues.Add(child.Path);
                }
            }
            else if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(List<>))
            {
                var item = t.GetGenericArguments()[0];
                if (item.IsClass && item != typeof(string))
                {
                    foreach (var element in child.GetChildren())
                    {
                        UnknownKeys(element, item, errors, badValues);
                    }
                }
            }
            else if (t.IsClass && t != typeof(string))
            {
                UnknownKeys(child, t, errors, badValues);
            }
        }
    }
}
