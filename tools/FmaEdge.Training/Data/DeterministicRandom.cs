namespace FmaEdge.Training.Data;

/// <summary>Process-independent seeding (System.HashCode is randomised per process, so it cannot make runs
/// reproducible). SplitMix64 mixing of a few integers. Stateless and thread-safe.</summary>
public static class DeterministicRandom
{
    public static int Seed(params long[] parts)
    {
        var h = 0x9E3779B97F4A7C15UL;
        foreach (var p in parts)
        {
            h = Mix(h ^ (ulong)p);
        }

        return (int)(h & 0x7fffffff);
    }

    public static Random Create(params long[] parts) => new(Seed(parts));

    private static ulong Mix(ulong z)
    {
        z += 0x9E3779B97F4A7C15UL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
