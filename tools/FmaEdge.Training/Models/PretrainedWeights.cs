using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace FmaEdge.Training.Models;

/// <summary>The pretrained file does not fit the model; the message lists every mismatch.</summary>
public sealed class PretrainedWeightsException(string message) : Exception(message);

/// <summary>Loads timm weights (safetensors) into the backbone by name, as the family's <see cref="PretrainedLayout"/>
/// says (ConvNeXt: stem.*, stages.*, head.norm.*). Strict: every such parameter must be present with the same shape, and
/// the file may hold nothing else except timm's classifier (ConvNeXt: head.fc.*), which is never loaded because our heads
/// fit our tree. Stateless.</summary>
public static class PretrainedWeights
{
    /// <summary>Returns the number of tensors loaded.</summary>
    public static int Load(HierarchicalClassifier model, string safetensorsPath)
    {
        var layout = model.Family.Pretrained
            ?? throw new PretrainedWeightsException($"--pretrained loads timm ConvNeXt weights; {model.Config.Model} has no pretrained loader");

        Dictionary<string, Tensor> file;
        try
        {
            file = Safetensors.LoadStateDict(safetensorsPath);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or FormatException or ArgumentException or NotImplementedException or KeyNotFoundException or System.Text.Json.JsonException)
        {
            throw new PretrainedWeightsException($"cannot read '{safetensorsPath}' as safetensors: {e.Message}");
        }

        try
        {
            var ours = model.named_parameters().Where(p => layout.Loads(p.name)).ToDictionary(p => p.name, p => p.parameter);
            var problems = new List<string>();
            foreach (var (name, p) in ours)
            {
                if (!file.TryGetValue(name, out var t))
                {
                    problems.Add($"missing in file: {name} [{string.Join(",", p.shape)}]");
                }
                else if (!t.shape.SequenceEqual(p.shape))
                {
                    problems.Add($"shape mismatch: {name} is [{string.Join(",", t.shape)}] in the file, [{string.Join(",", p.shape)}] in {model.Config.Model}");
                }
            }

            var extra = file.Keys.Where(k => !ours.ContainsKey(k) && !k.StartsWith(layout.ClassifierPrefix, StringComparison.Ordinal)).Order(StringComparer.Ordinal).ToList();
            problems.AddRange(extra.Take(20).Select(k => $"not in {model.Config.Model}: {k}"));
            if (extra.Count > 20)
            {
                problems.Add($"... and {extra.Count - 20} more unknown tensors");
            }

            if (problems.Count > 0)
            {
                throw new PretrainedWeightsException($"'{Path.GetFileName(safetensorsPath)}' does not fit {model.Config.Model} (is it a timm {model.Config.Model} checkpoint?):\n  - "
                    + string.Join("\n  - ", problems.Take(40)));
            }

            using var _ = no_grad();
            foreach (var (name, p) in ours)
            {
                p.copy_(file[name].to(p.dtype));
            }

            return ours.Count;
        }
        finally
        {
            foreach (var t in file.Values)
            {
                t.Dispose();
            }
        }
    }
}
