namespace FmaEdge.Training.Training;

/// <summary>Linear warm-up then cosine decay to a floor. Per optimisation step by default; with
/// <paramref name="StepsPerEpoch"/> > 0 the cosine part holds each epoch's value for the whole epoch (PyTorch's
/// CosineAnnealingLR stepped once per epoch). Immutable, thread-safe.</summary>
public sealed record LearningRateSchedule(double BaseLr, double MinLr, long WarmupSteps, long TotalSteps, long StepsPerEpoch = 0)
{
    public double At(long step)
    {
        if (WarmupSteps > 0 && step < WarmupSteps)
        {
            return BaseLr * (step + 1) / WarmupSteps;
        }

        var span = Math.Max(1, TotalSteps - WarmupSteps);
        var done = step - WarmupSteps;
        if (StepsPerEpoch > 0)
        {
            done -= done % StepsPerEpoch;
        }

        var t = Math.Clamp((double)done / span, 0, 1);
        return MinLr + (0.5 * (BaseLr - MinLr) * (1 + Math.Cos(Math.PI * t)));
    }
}
