using FmaEdge.Training.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

public class ModelTests
{
    [Theory]
    [InlineData("flat")]
    [InlineData("independent")]
    [InlineData("shared")]
    public void Forward_EveryHead_GivesLogitsPerLevel(string head)
    {
        var tree = TestData.Tree;
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = head, ImageSize = 64, HeadHidden = 32 }, tree);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        var x = randn(2, 3, 64, 64);
        var outputs = model.forward(x);
        Assert.Equal(tree.Depth, outputs.Length);
        for (var l = 0; l < tree.Depth; l++)
        {
            Assert.Equal(new long[] { 2, tree.Levels[l].Count }, outputs[l].shape);
            Assert.True(outputs[l].isfinite().all().item<bool>());
        }
    }

    [Fact]
    public void Forward_FlatHead_UpperSoftmaxIsSumOfLeafProbabilities()
    {
        var tree = TestData.Tree;
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = "flat", ImageSize = 64 }, tree);
        model.eval();
        using var scope = NewDisposeScope();
        using var _ = no_grad();
        // Large head weights spread the leaf logits so the check is not trivially uniform.
        model.Head.Fc[0].Weight.mul_(200);
        var outputs = model.forward(randn(3, 3, 64, 64));
        var leafP = outputs[^1].softmax(1);
        for (var l = 0; l < tree.Depth - 1; l++)
        {
            var map = tensor(Flatten(tree.LeafToLevelMatrix(l)), [tree.Leaves.Count, tree.Levels[l].Count]);
            var summed = leafP.matmul(map);
            var p = outputs[l].softmax(1);
            Assert.True(p.allclose(summed, rtol: 1e-4, atol: 1e-5), $"level {l}: softmax of logsumexp logits differs from summed leaf probabilities");
        }
    }

    [Fact]
    public void Parameters_Atto_FollowTimmNamesAndShapes()
    {
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = "independent", ImageSize = 64 }, TestData.Tree);
        var shapes = model.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        int[] depths = [2, 2, 6, 2];
        int[] dims = [40, 80, 160, 320];
        var expected = new Dictionary<string, long[]>
        {
            ["stem.0.weight"] = [40, 3, 4, 4],
            ["stem.0.bias"] = [40],
            ["stem.1.weight"] = [40],
            ["stem.1.bias"] = [40],
            ["head.norm.weight"] = [320],
            ["head.norm.bias"] = [320],
        };
        for (var s = 0; s < 4; s++)
        {
            var c = dims[s];
            if (s > 0)
            {
                expected[$"stages.{s}.downsample.0.weight"] = [dims[s - 1]];
                expected[$"stages.{s}.downsample.0.bias"] = [dims[s - 1]];
                expected[$"stages.{s}.downsample.1.weight"] = [c, dims[s - 1], 2, 2];
                expected[$"stages.{s}.downsample.1.bias"] = [c];
            }

            for (var b = 0; b < depths[s]; b++)
            {
                var p = $"stages.{s}.blocks.{b}.";
                expected[p + "conv_dw.weight"] = [c, 1, 7, 7];
                expected[p + "conv_dw.bias"] = [c];
                expected[p + "norm.weight"] = [c];
                expected[p + "norm.bias"] = [c];
                expected[p + "mlp.fc1.weight"] = [4 * c, c, 1, 1];
                expected[p + "mlp.fc1.bias"] = [4 * c];
                expected[p + "mlp.fc2.weight"] = [c, 4 * c, 1, 1];
                expected[p + "mlp.fc2.bias"] = [c];
                expected[p + "gamma"] = [c];
            }
        }

        var backbone = shapes.Where(kv => !kv.Key.StartsWith("head.fc", StringComparison.Ordinal)).ToDictionary();
        Assert.Equal(expected.Keys.Order(StringComparer.Ordinal), backbone.Keys.Order(StringComparer.Ordinal));
        foreach (var (name, shape) in expected)
        {
            Assert.True(shape.SequenceEqual(backbone[name]), $"{name}: expected [{string.Join(",", shape)}], got [{string.Join(",", backbone[name])}]");
        }

        // What checkpoints and safetensors files hold: exactly the named parameters, no duplicates.
        Assert.Equal(shapes.Keys.Order(StringComparer.Ordinal), model.state_dict().Keys.Order(StringComparer.Ordinal));

        // timm lists convnext_atto at 3.7 M parameters including its 1000-class fc (321 k).
        var count = model.named_parameters().Where(p => !p.name.StartsWith("head.fc", StringComparison.Ordinal)).Sum(p => p.parameter.numel());
        Assert.InRange(count, 3_330_000, 3_420_000);
    }

    [Fact]
    public void Parameters_Tiny_UseLinearMlpAndLayerScaleInit()
    {
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_tiny", Head = "flat", ImageSize = 64 }, TestData.Tree);
        var p = model.named_parameters().ToDictionary(x => x.name, x => x.parameter);
        Assert.Equal(new long[] { 384, 96 }, p["stages.0.blocks.0.mlp.fc1.weight"].shape);
        Assert.Equal(new long[] { 768, 3072 }, p["stages.3.blocks.2.mlp.fc2.weight"].shape);
        Assert.Equal(1e-6f, p["stages.2.blocks.8.gamma"].max().item<float>(), 9);
        Assert.False(p.ContainsKey("stages.2.blocks.9.gamma"));
    }

    [Fact]
    public void Constructor_ManySeeds_GivesFiniteWeights()
    {
        for (var seed = 0; seed < 5; seed++)
        {
            manual_seed(seed);
            using var model = new HierarchicalClassifier(new ModelConfig { Model = "convnext_atto", Head = "shared", ImageSize = 64 }, TestData.Tree);
            foreach (var (name, p) in model.named_parameters())
            {
                Assert.True(p.isfinite().all().item<bool>(), $"seed {seed}: {name} has non-finite values");
            }
        }
    }

    internal static float[] Flatten(float[,] m)
    {
        var r = new float[m.Length];
        Buffer.BlockCopy(m, 0, r, 0, m.Length * sizeof(float));
        return r;
    }
}
