using Spectre.Console;

namespace FmaEdge.Cli;

/// <summary>Where commands write: Spectre for tables, plain writers for JSON (never wrapped). Tests pass string writers.</summary>
public sealed record CliConsole(IAnsiConsole Ansi, TextWriter Out, TextWriter Error)
{
    /// <summary>Where commands read input (a password); tests pass a string reader.</summary>
    public TextReader In { get; init; } = Console.In;

    /// <summary>True when <see cref="In"/> is an interactive terminal (prompt, no echo).</summary>
    public bool InIsTerminal { get; init; }

    /// <summary>The process's own console.</summary>
    public static CliConsole Standard() => new(AnsiConsole.Console, Console.Out, Console.Error) { InIsTerminal = !Console.IsInputRedirected };

    /// <summary>A console writing into <paramref name="output"/> (no colours, wide lines), for tests and pipes.</summary>
    public static CliConsole ToWriter(StringWriter output, StringWriter error)
    {
        var ansi = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Out = new AnsiConsoleOutput(output),
            Interactive = InteractionSupport.No,
        });
        ansi.Profile.Width = 240; // wide enough that tables never wrap names
        return new(ansi, output, error);
    }
}
