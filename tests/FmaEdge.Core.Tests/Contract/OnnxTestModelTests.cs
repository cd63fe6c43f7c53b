using FmaEdge.Core.Contract;
using FmaEdge.Core.Decoding;
using FmaEdge.Core.Taxonomy;
using FmaEdge.Evaluation.Datasets;
using FmaEdge.TestSupport;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace FmaEdge.Core.Tests.Contract;

/// <summary>The hand-built test models are real: ONNX Runtime loads and runs them, with the outputs
/// <see cref="OnnxTestModels.Reference"/> predicts, and they pass the contract.</summary>
public sealed class OnnxTestModelTests : IDisposable
{
    private readonly TempFolder _temp = new("core-onnx");

    public void Dispose() => _temp.Dispose();

    private static float[] Batch(int n, int h, int w, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n * 3 * h * w).Select(_ => (float)((rng.NextDouble() * 4) - 2)).ToArray();
    }

    private static float[][] RunOrt(string path, string inputName, float[] batch, int n, int h, int w, IEnumerable<string> outputs)
    {
        using var session = new InferenceSession(path);
        var tensor = new DenseTensor<float>(batch, [n, 3, h, w]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor(inputName, tensor)]);
        return outputs.Select(name => results.Single(r => r.Name == name).AsTensor<float>().ToArray()).ToArray();
    }

    [Theory]
    [InlineData(OutputKinds.Logits, 1)]
    [InlineData(OutputKinds.Logits, 3)]
    [InlineData(OutputKinds.Probabilities, 2)]
    public void Build_SmallTree_RunsInOnnxRuntimeAndMatchesTheReference(string kind, int n)
    {
        var tree = OnnxTestModels.SmallTree();
        var manifest = OnnxTestModels.Manifest(tree, 16, 24, kind);
        var path = OnnxTestModels.Write(OnnxTestModels.Build(manifest, tree, seed: 3), Path.Combine(_temp.Path, "m.onnx"));
        var batch = Batch(n, 16, 24, seed: n);

        var actual = RunOrt(path, manifest.Input.Name, batch, n, 16, 24, manifest.Outputs.Select(o => o.Name));
        var expected = OnnxTestModels.Reference(manifest, tree, batch, n, seed: 3);

        for (var l = 0; l < tree.Depth; l++)
        {
            Assert.Equal(n * tree.Levels[l].Count, actual[l].Length);
            for (var i = 0; i < actual[l].Length; i++)
            {
                Assert.Equal(expected[l][i], actual[l][i], 1e-4);
            }
        }

        // Different images give different scores, so decoding tests on these outputs mean something.
        Assert.True(expected[^1].Distinct().Count() > tree.Leaves.Count / 2);
    }

    [Fact]
    public void Build_RealTree_ValidatesRunsAndDecodesToValidPaths()
    {
        var tree = DatasetLoader.ScanFolder(TestPaths.DatasetTrain, levelNames: ["DefectLocate", "LocationFlag", "FMA Defect"]).Tree;
        var manifest = OnnxTestModels.Manifest(tree, 32, 32);
        var path = OnnxTestModels.Write(OnnxTestModels.Build(manifest, tree), Path.Combine(_temp.Path, "real.onnx"));

        var model = ModelContract.Load(path);
        var outputs = RunOrt(path, "image", Batch(4, 32, 32, 9), 4, 32, 32, manifest.Outputs.Select(o => o.Name));
        var decoder = HierarchicalDecoder.ForModel(model);

        Assert.Equal([3, 7, 21], model.Tree.LevelSizes);
        for (var i = 0; i < 4; i++)
        {
            var pred = decoder.DecodeBatchItem(outputs, i);
            Assert.True(tree.IsConsistentPath(pred.Path.Select(p => p.Index).ToArray()));
            Assert.Equal(3, pred.Coarse.Depth);
        }
    }

    [Fact]
    public void ForModel_ProbabilityOutputs_AreNotSoftmaxedAgain()
    {
        var tree = OnnxTestModels.SmallTree();
        var probsPath = OnnxTestModels.WriteSmall(Path.Combine(_temp.Path, "p.onnx"), kind: OutputKinds.Probabilities);
        var logitsPath = OnnxTestModels.WriteSmall(Path.Combine(_temp.Path, "l.onnx"));
        var batch = Batch(1, 16, 16, 5);
        var probs = RunOrt(probsPath, "image", batch, 1, 16, 16, ["level0_logits", "level1_logits"]);
        var logits = RunOrt(logitsPath, "image", batch, 1, 16, 16, ["level0_logits", "level1_logits"]);

        var fromProbs = HierarchicalDecoder.ForModel(ModelContract.Load(probsPath)).Decode(probs);
        var fromLogits = HierarchicalDecoder.ForModel(ModelContract.Load(logitsPath)).Decode(logits);

        for (var l = 0; l < tree.Depth; l++)
        {
            for (var c = 0; c < tree.Levels[l].Count; c++)
            {
                Assert.Equal(probs[l][c], fromProbs.Probabilities[l][c], 1e-5);
                Assert.Equal(fromLogits.Probabilities[l][c], fromProbs.Probabilities[l][c], 1e-5);
            }
        }

        Assert.Equal(fromLogits.Path.Select(p => p.Path), fromProbs.Path.Select(p => p.Path));
        Assert.All(fromProbs.Path.Zip(fromLogits.Path), x => Assert.Equal(x.Second.Confidence, x.First.Confidence, 1e-5));
    }
}
