using System.Runtime;
using TorchSharp.Modules;

namespace FmaEdge.Training.Training;

/// <summary>Runs an optimiser step with no garbage collection inside it. TorchSharp's AdamW passes temporary
/// <c>Scalar</c>s to libtorch by handle only; a collection during the step can finalise (free) one while the native
/// call still reads it ("Unknown scalar type", or a garbage factor in the update). With no collection inside the
/// step, its temporaries live until it returns. Falls back to a plain step when the runtime refuses the no-GC
/// region. Not thread-safe (one training loop per process).</summary>
public static class SafeStep
{
    // Managed allocations of one step (tensor wrappers and scalars for every parameter) are well under this.
    private const long Budget = 64L << 20;

    public static void Step(AdamW optimizer)
    {
        var region = false;
        try
        {
            region = GC.TryStartNoGCRegion(Budget);
        }
        catch (InvalidOperationException)
        {
            // Already in a no-GC region.
        }
        catch (ArgumentOutOfRangeException)
        {
            // The budget exceeds what this runtime's ephemeral space allows.
        }

        try
        {
            optimizer.step();
        }
        finally
        {
            if (region && GCSettings.LatencyMode == GCLatencyMode.NoGCRegion)
            {
                GC.EndNoGCRegion();
            }
        }
    }
}
