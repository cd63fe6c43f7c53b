using FmaEdge.Core.Decoding;

namespace FmaEdge.Core.Tests.Decoding;

public sealed class ToProbabilitiesRegressionTests
{
    [Fact]
    public void ToProbabilities_TinyProbabilityAtLowTemperature_DoesNotUnderflowToZero()
    {
        // Found by the property test (CsCheck seed bExU_Sn_US03): 3.7e-27 ^ (1/0.2) underflowed to 0 in float.
        var p = HierarchicalDecoder.ToProbabilities([3.731e-27f], 0.20005621501228876, logits: false);
        Assert.Equal(1f, p[0], 6);
    }

    [Fact]
    public void ToProbabilities_TinyProbabilitiesSharpened_KeepTheirRatio()
    {
        // p^(1/T) normalised: with T = 0.5 the ratio 1e-20 : 2e-20 becomes 1 : 4.
        var p = HierarchicalDecoder.ToProbabilities([1e-20f, 2e-20f], 0.5, logits: false);
        Assert.Equal(0.2f, p[0], 5);
        Assert.Equal(0.8f, p[1], 5);
    }

    [Fact]
    public void ToProbabilities_AllZero_IsUniform()
    {
        Assert.Equal([0.5f, 0.5f], HierarchicalDecoder.ToProbabilities([0f, 0f], 1.0, logits: false));
    }
}
