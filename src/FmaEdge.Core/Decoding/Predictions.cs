namespace FmaEdge.Core.Decoding;

/// <summary>One class with its probability.</summary>
public sealed record ClassScore(int Index, string Label, string Path, float Probability);

/// <summary>A level's own answer: its argmax and top-k, after temperature scaling.</summary>
public sealed record LevelPrediction(int Level, string LevelName, int Index, string Label, string Path, float Confidence,
    IReadOnlyList<ClassScore> TopK);

/// <summary>One node of an answer path. <see cref="Confidence"/> is the node's marginal probability under the
/// path distribution (the sum over the leaves below it), so it never falls when moving toward the root.</summary>
public sealed record NodeAnswer(int Level, string LevelName, int Index, string Label, string Path, float Confidence);

/// <summary>The coarse answer: the path cut at the deepest level that passes its threshold (climbing from
/// the leaf). <see cref="Depth"/> is the number of levels answered: Depth == tree depth is a full answer,
/// 0 means "not sure even of the first level".</summary>
public sealed record CoarseAnswer(int Depth, IReadOnlyList<NodeAnswer> Nodes)
{
    /// <summary>The deepest answered node, or null at depth 0.</summary>
    public NodeAnswer? Deepest => Nodes.Count == 0 ? null : Nodes[^1];
}

/// <summary>Everything decoded for one image. Immutable.</summary>
/// <param name="Levels">Per-level argmax answers (may name a child under the wrong parent).</param>
/// <param name="Path">The path-consistent answer: the valid root-to-leaf path with the highest score.</param>
/// <param name="Coarse">The calibrated coarse answer.</param>
/// <param name="ArgmaxConsistent">True when the per-level argmaxes already form a valid path.</param>
/// <param name="Probabilities">Per-level probabilities after temperature, [level][class].</param>
public sealed record HierarchicalPrediction(
    IReadOnlyList<LevelPrediction> Levels,
    IReadOnlyList<NodeAnswer> Path,
    CoarseAnswer Coarse,
    bool ArgmaxConsistent,
    float[][] Probabilities)
{
    /// <summary>Leaf index of the path-consistent answer.</summary>
    public int LeafIndex => Path[^1].Index;
}
