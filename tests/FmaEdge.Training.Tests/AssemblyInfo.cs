// Torch's random generator and thread settings are process-wide: tests that seed it must not interleave,
// and torch already uses every core, so running test classes in parallel would only add contention.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
