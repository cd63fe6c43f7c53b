namespace FmaEdge.Training.Training;

/// <summary>Linear warm-up then cosine decay to a floor, per optimisation step. Immutable, thread-safe.</summary>
public sealed record LearningRateSchedule(double BaseLr, double MinLr, long WarmupSteps, long TotalSteps)
{
    public double At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps)
        {
            return BaseLr * (step + 1) / WarmupSteps;
        }

        var span = Math.Max(1, TotalSteps - WarmupSteps);
        var t = Math.Clamp((double)(step - WarmupSteps) / span, 0, 1);
        return MinLr + (0.5 * (BaseLr - MinLr) * (1 + Math.Cos(Math.PI * t)));
    }
}
