using FmaEdge.Core.Decoding;

namespace FmaEdge.Evaluation.Metrics;

/// <summary>One evaluated image: its true leaf and what the decoder made of it (per-level probabilities
/// after temperature, per-level argmaxes, the path-consistent answer and the coarse answer). Immutable.</summary>
public sealed record EvaluationRecord(int TrueLeaf, HierarchicalPrediction Prediction);
