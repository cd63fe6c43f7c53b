// FmaEdge.Training: see the project Description.

// TorchSharp modules own the parameters and submodules they register (RegisterComponents/register_module) and dispose
// them with themselves; the analyzer cannot see that hand-over.
[assembly: System.Diagnostics.CodeAnalysis.SuppressMessage("Reliability", "CA2000:Dispose objects before losing scope",
    Justification = "Registered with the owning TorchSharp module, which disposes it.", Scope = "namespaceanddescendants",
    Target = "~N:FmaEdge.Training.Models")]
