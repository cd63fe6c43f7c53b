using FmaEdge.Core.Contract;
using FmaEdge.TestSupport;
using FmaEdge.Training.Export;
using FmaEdge.Training.Losses;
using FmaEdge.Training.Models;
using FmaEdge.Training.Training;
using FmaEdge.Vision;
using static TorchSharp.torch;

namespace FmaEdge.Training.Tests;

/// <summary>ResNet-50+CBAM and ViT-Tiny/Small: every head and loss trains a step, checkpoints round-trip (BatchNorm
/// statistics included), and full-size parameter counts are the known ones. Export parity of every family is in
/// <see cref="BackboneRegistryTests"/>.</summary>
public class BackboneTests
{
    [Theory]
    [InlineData("resnet50_cbam", "flat", "ce", 64)]
    [InlineData("resnet50_cbam", "independent", "dhc", 64)]
    [InlineData("resnet50_cbam", "shared", "dhc-soft", 64)]
    [InlineData("vit_tiny", "flat", "dhc-soft", 32)]
    [InlineData("vit_tiny", "independent", "ce", 32)]
    [InlineData("vit_tiny", "shared", "dhc", 32)]
    [InlineData("vit_small", "independent", "dhc-soft", 32)]
    public void TrainStep_Backbone_MovesWeightsWithFiniteLoss(string backbone, string head, string loss, int size)
    {
        var tree = TestData.Tree;
        manual_seed(5);
        using var model = new HierarchicalClassifier(new ModelConfig { Model = backbone, Head = head, ImageSize = size, HeadHidden = 32 }, tree);
        using var before = model.named_parameters().Select(p => p.parameter.detach().clone()).ToList().AsDisposable();
        var (x, targets) = RealBatch(size);
        var options = new TrainingOptions { Model = model.Config };
        using (var optimizer = Trainer.CreateOptimizer(model, options))
        using (var lossFn = new HierarchicalLoss(new LossOptions { Kind = LossOptions.ParseKind(loss) }, tree))
        using (var scope = NewDisposeScope())
        {
            model.train();
            var value = lossFn.Compute(model.forward(x), targets, loss == "ce" ? LevelWeightSchedule.BCnn(tree.Depth).For(0, 10) : null);
            optimizer.zero_grad();
            value.Total.backward();
            SafeStep.Step(optimizer); // as the trainer steps: AdamW's temporary Scalars must not be collected mid-call
            Assert.True(float.IsFinite(value.Total.item<float>()));
        }

        var moved = model.named_parameters().Zip(before.Items).Count(p => !TestData.Same(p.First.parameter, p.Second));
        Assert.True(moved > model.parameters().Count() / 2, $"only {moved} parameter tensors moved in a training step");
    }

    [Fact]
    public void Checkpoint_ResNetAfterTrainingStep_RoundTripsWeightsAndBatchNormStatistics()
    {
        var tree = TestData.Tree;
        using var model = new HierarchicalClassifier(new ModelConfig { Model = "resnet50_cbam", Head = "independent", ImageSize = 32 }, tree);
        var (x, _) = RealBatch(32);
        model.train();
        using (var scope = NewDisposeScope())
        {
            _ = model.forward(x);
        }

        using var dir = new TempFolder("ckpt-resnet");
        Checkpoint.Save(dir.Path, model, null, new CheckpointState { Options = new TrainingOptions { Model = model.Config }, Tree = Core.Taxonomy.TaxonomyLoader.ToJson(tree) });
        var (loaded, _, _) = Checkpoint.LoadModel(dir.Path);
        using (loaded)
        {
            var a = model.state_dict();
            var b = loaded.state_dict();
            Assert.Equal(a.Keys.Order(), b.Keys.Order());
            Assert.Contains("layer1.0.bn1.running_mean", a.Keys);
            Assert.Contains("layer4.2.se.spatial.conv.bn.running_var", a.Keys);
            // The forward pass moved the running statistics away from their initial 0/1.
            Assert.False(a["bn1.running_mean"].eq(0).all().item<bool>());
            foreach (var k in a.Keys)
            {
                Assert.True(TestData.Same(a[k], b[k]), $"{k} differs after the checkpoint round trip");
            }
        }
    }

    [Fact]
    public void ParameterCount_FullSizeBackbones_EqualKnownFigures()
    {
        var tree = TestData.Tree;
        using (var resnet = new HierarchicalClassifier(new ModelConfig { Model = "resnet50_cbam", Head = "flat", ImageSize = 224 }, tree))
        {
            var cbam = resnet.named_parameters().Where(p => p.name.Contains(".se.", StringComparison.Ordinal)).Sum(p => p.parameter.numel());
            // torchvision/timm resnet50: 25,557,032 parameters with its 2048x1000 classifier (2,049,000).
            Assert.Equal(25_557_032 - 2_049_000, resnet.ParameterCount(backboneOnly: true) - cbam);
            // CBAM per bottleneck of C output channels: shared MLP 2*C*C/16 (bias-free), 7x7x2 spatial conv, its BN (2).
            long expectedCbam = 0;
            for (var s = 0; s < 4; s++)
            {
                long c = ResNetCbam.Planes[s] * 4;
                expectedCbam += ResNetCbam.Depths[s] * ((2 * c * (c / 16)) + 98 + 2);
            }

            Assert.Equal(2_516_544, expectedCbam);
            Assert.Equal(expectedCbam, cbam);
        }

        // timm vit_tiny_patch16_224 has 5,717,416 and vit_small 22,050,664 parameters including the 1000-class head
        // (dim*1000 + 1000); our backbone is everything but that head.
        foreach (var (name, total, dim) in new[] { ("vit_tiny", 5_717_416L, 192L), ("vit_small", 22_050_664L, 384L) })
        {
            using var vit = new HierarchicalClassifier(new ModelConfig { Model = name, Head = "flat", ImageSize = 224 }, tree);
            Assert.Equal(total - ((dim * 1000) + 1000), vit.ParameterCount(backboneOnly: true));
        }
    }

    [Fact]
    public void Parameters_ResNetAndVit_FollowTimmNames()
    {
        var tree = TestData.Tree;
        using var resnet = new HierarchicalClassifier(new ModelConfig { Model = "resnet50_cbam", Head = "independent", ImageSize = 32 }, tree);
        var r = resnet.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([64L, 3, 7, 7], r["conv1.weight"]);
        Assert.Equal([256L, 64, 1, 1], r["layer1.0.downsample.0.weight"]);
        Assert.Equal([128L, 128, 3, 3], r["layer2.0.conv2.weight"]);
        Assert.Equal([128L, 2048, 1, 1], r["layer4.2.se.channel.fc1.weight"]);
        Assert.Equal([1L, 2, 7, 7], r["layer3.5.se.spatial.conv.conv.weight"]);
        Assert.DoesNotContain("conv1.bias", r.Keys);

        using var vit = new HierarchicalClassifier(new ModelConfig { Model = "vit_tiny", Head = "independent", ImageSize = 48 }, tree);
        var v = vit.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([1L, 1 + 9, 192], v["pos_embed"]);
        Assert.Equal([1L, 1, 192], v["cls_token"]);
        Assert.Equal([192L, 3, 16, 16], v["patch_embed.proj.weight"]);
        Assert.Equal([576L, 192], v["blocks.11.attn.qkv.weight"]);
        Assert.Equal([768L, 192], v["blocks.0.mlp.fc1.weight"]);
        Assert.Equal([192L], v["norm.weight"]);
        Assert.Throws<ArgumentException>(() => new ModelConfig { Model = "vit_tiny", ImageSize = 40 }.Validate());
    }

    [Fact]
    public void ResamplePosEmbed_SameGridIsIdentityAndNewGridKeepsClassToken()
    {
        manual_seed(1);
        using var scope = NewDisposeScope();
        var pos = randn(1, 1 + 196, 8);
        Assert.True(TestData.Same(pos, VisionTransformer.ResamplePosEmbed(pos, 14)));
        var small = VisionTransformer.ResamplePosEmbed(pos, 7);
        Assert.Equal([1L, 1 + 49, 8], small.shape);
        Assert.True(TestData.Same(pos.narrow(1, 0, 1), small.narrow(1, 0, 1)));
        // A constant embedding stays (nearly) constant under bicubic resampling.
        var flat = ones(1, 1 + 196, 8);
        Assert.True(VisionTransformer.ResamplePosEmbed(flat, 7).allclose(ones(1, 50, 8), atol: 1e-4));
    }

    /// <summary>One real validation image per leaf at the given size, and its targets per level.</summary>
    private static (Tensor Images, Tensor[] Targets) RealBatch(int size)
    {
        var data = TestData.Subset("val", 1);
        var tree = data.Tree;
        var pre = new ImagePreprocessor(new PreprocessSpec(), size, size);
        var floats = data.Images.SelectMany(i => pre.PreprocessFile(i.Path)).ToArray();
        var targets = Enumerable.Range(0, tree.Depth).Select(l => tensor(data.Images.Select(i => (long)tree.AncestorOfLeaf(i.Leaf, l)).ToArray())).ToArray();
        return (tensor(floats, [data.Images.Count, 3, size, size]), targets);
    }
}

/// <summary>A disposable list of tensors (clones kept for comparison).</summary>
internal sealed class TensorList(List<Tensor> items) : IDisposable
{
    public List<Tensor> Items { get; } = items;

    public void Dispose() => Items.ForEach(t => t.Dispose());
}

internal static class TensorListExtensions
{
    public static TensorList AsDisposable(this List<Tensor> items) => new(items);
}
