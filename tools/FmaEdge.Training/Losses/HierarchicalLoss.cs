using FmaEdge.Core.Taxonomy;
using FmaEdge.Training.Models;
using TorchSharp;
using static TorchSharp.torch;
using F = TorchSharp.torch.nn.functional;

namespace FmaEdge.Training.Losses;

/// <summary>Which training loss.</summary>
public enum LossKind
{
    /// <summary>sum_l w_l * CE_l (optionally label-smoothed).</summary>
    Ce,

    /// <summary>The seed's Deep Hierarchical Classification loss exactly as published: lloss + beta * dloss,
    /// dloss from argmax indicators. dloss is a constant with respect to the weights (no gradient): beta and
    /// ploss change the reported loss, never the training. Kept for faithful reproduction.</summary>
    Dhc,

    /// <summary>lloss + beta * mean expected parent/child inconsistency, 1 - sum_a p_{l-1}(a) sum_{c in ch(a)} p_l(c):
    /// the differentiable form of the same idea.</summary>
    DhcSoft,
}

/// <summary>Loss settings; <see cref="Validate"/> before use. Immutable.</summary>
public sealed record LossOptions
{
    public LossKind Kind { get; init; } = LossKind.Ce;

    /// <summary>Per-level weights alpha_l (null: 1 for every level).</summary>
    public IReadOnlyList<double>? Alphas { get; init; }

    public double LabelSmoothing { get; init; }

    /// <summary>Weight of the dependence term (dhc, dhc-soft); the seed uses 0.8.</summary>
    public double Beta { get; init; } = 0.8;

    /// <summary>The seed's ploss base (3).</summary>
    public double PLoss { get; init; } = 3.0;

    public static LossKind ParseKind(string s) => s.Trim().ToLowerInvariant() switch
    {
        "ce" => LossKind.Ce,
        "dhc" => LossKind.Dhc,
        "dhc-soft" or "dhcsoft" => LossKind.DhcSoft,
        _ => throw new ArgumentException($"unknown loss '{s}'; choose ce, dhc or dhc-soft", nameof(s)),
    };

    public static string Name(LossKind k) => k switch { LossKind.Ce => "ce", LossKind.Dhc => "dhc", _ => "dhc-soft" };

    public void Validate(int levels)
    {
        if (Alphas is not null && (Alphas.Count != levels || Alphas.Any(a => !(a >= 0) || !double.IsFinite(a))))
        {
            throw new ArgumentException($"alphas need {levels} non-negative values");
        }

        if (LabelSmoothing is < 0 or >= 1)
        {
            throw new ArgumentException($"label smoothing {LabelSmoothing} is outside [0, 1)");
        }

        if (!(Beta >= 0) || !(PLoss >= 1))
        {
            throw new ArgumentException("beta must be >= 0 and ploss >= 1");
        }
    }
}

/// <summary>One loss evaluation: the total to back-propagate and its parts as plain numbers.</summary>
public sealed record LossValue(Tensor Total, float[] PerLevel, float Dependence);

/// <summary>Computes the chosen loss from per-level logits and per-level targets. Holds small constant tensors
/// (the child-to-parent maps); not thread-safe; dispose when done.</summary>
public sealed class HierarchicalLoss : IDisposable
{
    private readonly LossOptions _options;

    // Kept alive with the loss: a temporary Scalar can be freed during the native call (see Scalars).
    private readonly Scalar _beta;
    private readonly CategoryTree _tree;
    private readonly Tensor[] _childToParent;   // [l] -> [n_l, n_{l-1}] 0/1 (l >= 1)
    private readonly Tensor[] _parentOf;        // [l] -> [n_l] long (l >= 1)

    public HierarchicalLoss(LossOptions options, CategoryTree tree, Device? device = null)
    {
        options.Validate(tree.Depth);
        _options = options;
        _beta = options.Beta.ToScalar();
        _tree = tree;
        device ??= CPU;
        _childToParent = new Tensor[tree.Depth];
        _parentOf = new Tensor[tree.Depth];
        for (var l = 1; l < tree.Depth; l++)
        {
            var n = tree.Levels[l].Count;
            var np = tree.Levels[l - 1].Count;
            var m = new float[n * np];
            var parents = new long[n];
            for (var c = 0; c < n; c++)
            {
                parents[c] = tree.ParentOf(l, c);
                m[(c * np) + (int)parents[c]] = 1f;
            }

            _childToParent[l] = tensor(m, [n, np]).to(device);
            _parentOf[l] = tensor(parents).to(device);
        }
    }

    public LossOptions Options => _options;

    /// <summary>The loss for a batch. <paramref name="levelWeights"/> multiplies alpha_l (the B-CNN schedule), null = 1.</summary>
    public LossValue Compute(Tensor[] logits, Tensor[] targets, IReadOnlyList<double>? levelWeights = null)
    {
        var levels = _tree.Depth;
        var perLevel = new float[levels];
        Tensor? lloss = null;
        for (var l = 0; l < levels; l++)
        {
            var ce = F.cross_entropy(logits[l], targets[l], label_smoothing: _options.LabelSmoothing);
            perLevel[l] = ce.detach().cpu().to_type(ScalarType.Float32).item<float>();
            var w = (_options.Alphas?[l] ?? 1.0) * (levelWeights?[l] ?? 1.0);
            var term = ce.mul(w);
            lloss = lloss is null ? term : lloss.add(term, Scalars.One);
        }

        var total = lloss!;
        var dependence = 0f;
        if (_options.Kind == LossKind.Dhc && levels > 1)
        {
            var d = DhcDloss(logits, targets);
            dependence = d.cpu().to_type(ScalarType.Float32).item<float>();
            total = total.add(d.mul(_beta), Scalars.One);
        }
        else if (_options.Kind == LossKind.DhcSoft && levels > 1)
        {
            var d = SoftDependence(logits);
            dependence = d.detach().cpu().to_type(ScalarType.Float32).item<float>();
            total = total.add(d.mul(_beta), Scalars.One);
        }

        return new LossValue(total, perLevel, dependence);
    }

    /// <summary>The seed's dloss: sum over the batch and levels l >= 1 of p^(D*pi_{l-1}) * p^(D*pi_l) - 1, with
    /// D = 1 when the predicted child is not under the predicted parent and pi = 1 when that level's prediction
    /// is wrong. Built from argmax indicators, so it carries no gradient (as in the published code).</summary>
    public Tensor DhcDloss(Tensor[] logits, Tensor[] targets)
    {
        Tensor? sum = null;
        for (var l = 1; l < logits.Length; l++)
        {
            var cur = logits[l].softmax(1).argmax(1);
            var prev = logits[l - 1].softmax(1).argmax(1);
            var d = _parentOf[l].index_select(0, cur).ne(prev).to(ScalarType.Float32);
            var lPrev = prev.ne(targets[l - 1]).to(ScalarType.Float32);
            var lCur = cur.ne(targets[l]).to(ScalarType.Float32);
            var term = pow(_options.PLoss, d.mul(lPrev)).mul(pow(_options.PLoss, d.mul(lCur))).sub(1).sum();
            sum = sum is null ? term : sum.add(term, Scalars.One);
        }

        return sum!;
    }

    /// <summary>Mean over the batch, summed over levels l >= 1, of 1 - sum_a p_{l-1}(a) * sum_{c in children(a)} p_l(c).</summary>
    public Tensor SoftDependence(Tensor[] logits)
    {
        Tensor? sum = null;
        for (var l = 1; l < logits.Length; l++)
        {
            var pChild = logits[l].softmax(1);
            var pParent = logits[l - 1].softmax(1);
            var childMassPerParent = pChild.matmul(_childToParent[l]);            // [N, n_{l-1}]
            var consistent = pParent.mul(childMassPerParent).sum(1);             // [N]
            var term = consistent.neg().add(1).mean();
            sum = sum is null ? term : sum.add(term, Scalars.One);
        }

        return sum!;
    }

    public void Dispose()
    {
        foreach (var t in _childToParent.Concat(_parentOf))
        {
            t?.Dispose();
        }

        _beta.Dispose();
    }
}
