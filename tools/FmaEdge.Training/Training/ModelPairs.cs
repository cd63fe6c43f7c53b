using FmaEdge.Training.Models;
using static TorchSharp.torch;

namespace FmaEdge.Training.Training;

/// <summary>Matches the tensors of two models of one configuration by name (for a weight average or a
/// lower-precision copy); throws <see cref="ArgumentException"/> when the models differ.</summary>
internal static class ModelPairs
{
    public static (Tensor First, Tensor Second)[] Parameters(HierarchicalClassifier first, HierarchicalClassifier second) =>
        Pair(first.named_parameters().Select(p => (p.name, (Tensor)p.parameter)), second.named_parameters().Select(p => (p.name, (Tensor)p.parameter)));

    public static (Tensor First, Tensor Second)[] Buffers(HierarchicalClassifier first, HierarchicalClassifier second) =>
        Pair(first.named_buffers(), second.named_buffers());

    private static (Tensor, Tensor)[] Pair(IEnumerable<(string Name, Tensor Value)> first, IEnumerable<(string Name, Tensor Value)> second)
    {
        var byName = second.ToDictionary(p => p.Name, p => p.Value);
        var pairs = first.Select(p => byName.TryGetValue(p.Name, out var s) && s.shape.SequenceEqual(p.Value.shape)
            ? (p.Value, s)
            : throw new ArgumentException($"the second model has no tensor '{p.Name}' of shape [{string.Join(",", p.Value.shape)}]")).ToArray();
        return pairs.Length == byName.Count ? pairs : throw new ArgumentException("the second model has tensors the first lacks");
    }
}
