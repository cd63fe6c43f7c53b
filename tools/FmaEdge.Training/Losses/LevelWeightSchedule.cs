namespace FmaEdge.Training.Losses;

/// <summary>Per-level loss weights over epochs. Constant (all 1) unless B-CNN style: weight moves from coarse
/// to fine levels (Zhu and Bain 2017; for three levels exactly their CIFAR-100 steps [0.98,0.01,0.01] ->
/// [0.1,0.8,0.1] -> [0.1,0.2,0.7] -> [0,0,1], at 0 %, 25 %, 45 % and 65 % of the epochs). Immutable.</summary>
public sealed class LevelWeightSchedule
{
    private readonly (double StartFraction, double[] Weights)[] _phases;

    private LevelWeightSchedule((double, double[])[] phases) => _phases = phases;

    /// <summary>All levels weighted 1 in every epoch.</summary>
    public static LevelWeightSchedule Constant(int levels) => new([(0.0, Enumerable.Repeat(1.0, levels).ToArray())]);

    /// <summary>The B-CNN schedule for a tree of <paramref name="levels"/> levels.</summary>
    public static LevelWeightSchedule BCnn(int levels)
    {
        if (levels == 3)
        {
            return new([(0.0, [0.98, 0.01, 0.01]), (0.25, [0.1, 0.8, 0.1]), (0.45, [0.1, 0.2, 0.7]), (0.65, [0.0, 0.0, 1.0])]);
        }

        if (levels == 1)
        {
            return Constant(1);
        }

        // Other depths: one phase per level focusing 0.8 on it (0.98 on the first), then the leaf only.
        var phases = new List<(double, double[])>();
        for (var k = 0; k < levels; k++)
        {
            var focus = k == 0 ? 0.98 : 0.8;
            var w = Enumerable.Repeat((1 - focus) / (levels - 1), levels).ToArray();
            w[k] = focus;
            phases.Add((0.65 * k / levels, w));
        }

        var last = new double[levels];
        last[^1] = 1;
        phases.Add((0.65, last));
        return new(phases.ToArray());
    }

    /// <summary>Weights for a 0-based epoch out of <paramref name="epochs"/>.</summary>
    public double[] For(int epoch, int epochs)
    {
        var f = epochs <= 0 ? 0 : (double)epoch / epochs;
        return _phases.Last(p => p.StartFraction <= f + 1e-12).Weights;
    }
}
