using System.Text.Json;
using FmaEdge.Core.Contract;
using FmaEdge.Messaging.Contract;
using FmaEdge.TestSupport;

namespace FmaEdge.Messaging.Tests.Contract;

public sealed class ModelMessageTests
{
    private static JsonElement Json(ModelMessage m) => JsonDocument.Parse(MessageJson.Serialize(m)).RootElement;

    [Fact]
    public void From_FloatModel_HasNoQuantizationKey()
    {
        var model = ModelContract.Load(TestPaths.DemoModel);

        var json = Json(ModelMessage.From(model, "CPU"));

        Assert.False(json.TryGetProperty("quantization", out _));
        Assert.StartsWith("convnext_", model.Manifest.Model.Architecture, StringComparison.Ordinal); // the shipped model's, read from the file
        Assert.Equal(model.Manifest.Model.Architecture, json.GetProperty("architecture").GetString());
    }

    [Theory]
    [InlineData("int8-symmetric")]
    [InlineData("uint8-asymmetric")]
    public void From_QuantizedModel_SaysItsActivationScheme(string activations)
    {
        var model = ModelContract.Load(TestPaths.DemoModel);
        var quantized = model with { Manifest = model.Manifest with { Quantization = new QuantizationSpec { Activations = activations } } };

        var json = Json(ModelMessage.From(quantized, "CPU"));

        Assert.Equal(activations, json.GetProperty("quantization").GetString());
    }
}
