using System.CommandLine;
using System.Globalization;
using FmaEdge.Core.Contract;
using Spectre.Console;

namespace FmaEdge.Cli.Commands;

/// <summary><c>fma-edge model validate FILE...</c>: checks model files against the contract and prints every
/// violation. Exit 0 when all are valid, 1 otherwise.</summary>
public static class ModelCommand
{
    public static Command Create(CliConsole console)
    {
        var files = new Argument<FileInfo[]>("files") { Arity = ArgumentArity.OneOrMore, Description = "ONNX model files" };
        var validate = new Command("validate", "Check model files against the FmaEdge model contract, listing every violation") { files };
        validate.SetAction(parse => Validate(console, parse.GetValue(files)!));
        var model = new Command("model", "Model file tools");
        model.Subcommands.Add(validate);
        return model;
    }

    public static int Validate(CliConsole console, IReadOnlyList<FileInfo> files)
    {
        var inv = CultureInfo.InvariantCulture;
        var allValid = true;
        foreach (var f in files)
        {
            var report = ModelContract.Validate(f.FullName);
            if (report.IsValid)
            {
                var m = report.Model!;
                console.Ansi.MarkupLine($"[green]valid[/]   {Markup.Escape(f.FullName)}");
                console.Ansi.MarkupLine(Markup.Escape(string.Create(inv,
                    $"        id {m.Manifest.Model.Id} {m.Manifest.Model.Version}, sha256 {m.ShortHash}, opset {m.Opset}, input {m.Manifest.Input.Width}x{m.Manifest.Input.Height}, " +
                    $"levels {string.Join(" / ", m.Tree.Levels.Select(l => $"{l.Name} ({l.Count})"))}, thresholds [{string.Join(", ", m.Manifest.Decoding.Thresholds.Select(DecodingSpec.FormatThreshold))}]")));
            }
            else
            {
                allValid = false;
                console.Ansi.MarkupLine($"[red]INVALID[/] {Markup.Escape(f.FullName)}: {report.Violations.Count} violation(s)");
                foreach (var v in report.Violations)
                {
                    console.Ansi.MarkupLine("        - " + Markup.Escape(v));
                }
            }
        }

        return allValid ? 0 : 1;
    }
}
