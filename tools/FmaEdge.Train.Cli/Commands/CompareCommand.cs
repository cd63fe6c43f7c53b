using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using FmaEdge.Training.Compare;
using FmaEdge.Training.Native;
using CompareOptions = FmaEdge.Training.Compare.CompareOptions;

namespace FmaEdge.Train.Cli.Commands;

/// <summary>fma-train compare: a grid backbone x head x loss x seed with one recipe, each row a resumable run folder
/// trained by a child `fma-train train`, results in GRIDDIR/results.{json,md,html}.</summary>
internal static class CompareCommand
{
    public static Command Create()
    {
        var o = new TrainCommand.Opts();
        var models = new Option<string?>("--models") { Description = "Backbones, comma-separated (e.g. convnext_atto,resnet50_cbam,vit_tiny)" };
        var heads = new Option<string>("--heads") { Description = "Heads, comma-separated", DefaultValueFactory = _ => "flat,independent,shared" };
        var losses = new Option<string>("--losses") { Description = "Losses, comma-separated: ce, dhc, dhc-soft, bcnn (= ce with the B-CNN schedule)", DefaultValueFactory = _ => "ce,dhc,dhc-soft,bcnn" };
        var seeds = new Option<string>("--seeds") { Description = "Seeds, comma-separated", DefaultValueFactory = _ => "0,1" };
        var grid = new Option<string?>("--grid") { Description = "JSON/YAML list of rows {model, head, loss, seed|seeds} instead of the cross product" };
        var cmd = new Command("compare", "Train and evaluate a grid of backbone x head x loss x seed with one recipe; resumable; writes OUT/results.json, results.md, results.html.");
        var perRow = new Option[] { o.Out, o.Model, o.Head, o.Loss, o.BCnn, o.Seed, o.Resume };
        var recipeOptions = o.All().Where(x => !perRow.Contains(x)).ToList();
        foreach (var opt in recipeOptions)
        {
            cmd.Options.Add(opt);
        }

        o.Out.Description = "Grid folder: one run folder per row plus results.*";
        cmd.Options.Add(o.Out);
        cmd.Options.Add(models);
        cmd.Options.Add(heads);
        cmd.Options.Add(losses);
        cmd.Options.Add(seeds);
        cmd.Options.Add(grid);
        cmd.SetAction(r =>
        {
            CompareOptions options;
            try
            {
                TorchNative.EnsureLoaded();
                var rows = r.GetValue(grid) is { } file
                    ? CompareGrid.Load(file)
                    : CompareGrid.Cross(Split(r.GetValue(models) ?? throw new ArgumentException("give --models (or --grid FILE)")), Split(r.GetValue(heads)!),
                        Split(r.GetValue(losses)!), Split(r.GetValue(seeds)!).Select(s => int.Parse(s, CultureInfo.InvariantCulture)));
                options = new CompareOptions
                {
                    OutDir = r.GetValue(o.Out)!,
                    Rows = rows,
                    Recipe = Recipe(r, recipeOptions),
                    TrainerCommand = TrainerCommand(),
                };
                options.Validate();
            }
            catch (Exception e) when (e is ArgumentException or FormatException or IOException or TorchNativeException)
            {
                Console.Error.WriteLine("fma-train compare: " + e.Message);
                return 2;
            }

            using var cts = TrainCli.CancelOnCtrlC();
            try
            {
                var results = new CompareRunner(options, Console.Out).Run(cts.Token);
                return results.Complete ? 0 : 1;
            }
            catch (OperationCanceledException)
            {
                Console.Error.WriteLine("stopped; rerun the same command to continue (finished rows are skipped, the stopped row resumes).");
                return 130;
            }
        });
        return cmd;
    }

    private static List<string> Split(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToList();

    /// <summary>The recipe exactly as typed: every explicitly given option with its tokens (paths made absolute).</summary>
    private static List<string> Recipe(ParseResult r, IEnumerable<Option> recipeOptions)
    {
        string[] paths = ["--data", "--val", "--tree", "--manifest", "--pretrained"];
        var args = new List<string>();
        foreach (var opt in recipeOptions)
        {
            var result = r.GetResult(opt);
            if (result is null || result.Implicit)
            {
                continue;
            }

            args.Add(opt.Name);
            args.AddRange(result.Tokens.Select(t => paths.Contains(opt.Name) ? Path.GetFullPath(t.Value) : t.Value));
        }

        return args;
    }

    /// <summary>How to start this same fma-train: the running executable, or fma-train.dll beside this assembly under
    /// the dotnet host (when hosted by something else, e.g. a test runner).</summary>
    internal static IReadOnlyList<string> TrainerCommand()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "fma-train")
        {
            return [self];
        }

        var dir = Path.GetDirectoryName(typeof(CompareCommand).Assembly.Location) ?? AppContext.BaseDirectory;
        var dll = Path.Combine(dir, "fma-train.dll");
        if (!File.Exists(dll))
        {
            throw new IOException($"cannot find fma-train.dll in {dir} to run grid rows with");
        }

        var host = self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet" ? self : "dotnet";
        return [host, dll];
    }
}
