using FmaEdge.Training.Models;
using static FmaEdge.Training.Export.ConvNeXtGraph;
using static FmaEdge.Training.Export.OnnxGraphBuilder;

namespace FmaEdge.Training.Export;

/// <summary>ONNX nodes for <see cref="VisionTransformer"/>: patch Conv, Reshape/Transpose to tokens, class token
/// Expand + Concat, position Add, blocks of LayerNormalization, attention as MatMul/Softmax/MatMul per head, GELU
/// MLP; the class token of the final LayerNorm. Stateless.</summary>
internal static class VitGraph
{
    /// <summary>Adds the backbone; returns the class-token feature [N, dim].</summary>
    public static string Pooled(OnnxGraphBuilder g, string input, VisionTransformer vit)
    {
        var dim = vit.Spec.Dim;
        var patches = Conv(g, input, vit.PatchEmbed, "patch_embed.proj");
        var flat = g.Node("Reshape", [patches, g.Int64Initializer("shape_patches", [0, dim, -1])]);
        var tokens = g.Node("Transpose", [flat], null, Ints("perm", 0, 2, 1));

        // Broadcast the class token to the (dynamic) batch: shape [N, 1, dim] from the input's first dimension.
        var n = g.Node("Shape", [input], null, Int("start", 0), Int("end", 1));
        var clsShape = g.Node("Concat", [n, g.Int64Initializer("shape_cls_tail", [1, dim])], null, Int("axis", 0));
        var cls = g.Node("Expand", [g.Initializer("cls_token", vit.ClsToken), clsShape]);
        var x = g.Node("Concat", [cls, tokens], null, Int("axis", 1));
        x = g.Node("Add", [x, g.Initializer("pos_embed", vit.PosEmbed)]);

        g.Int64Initializer("shape_qkv", [0, -1, 3, vit.Spec.Heads, dim / vit.Spec.Heads]);
        g.Int64Initializer("shape_tokens", [0, -1, dim]);
        for (var i = 0; i < vit.Blocks.Length; i++)
        {
            x = Block(g, x, vit.Blocks[i], $"blocks.{i}");
        }

        x = LayerNorm(g, x, vit.Norm, "norm");
        return g.Node("Gather", [x, g.Int64Scalar("index_0", 0)], null, Int("axis", 1));
    }

    private static string Block(OnnxGraphBuilder g, string x, VitBlock block, string name)
    {
        var a = Attention(g, LayerNorm(g, x, block.Norm1, name + ".norm1"), block.Attn, name + ".attn");
        var h = g.Node("Add", [x, a]);
        var m = Linear(g, Gelu(g, Linear(g, LayerNorm(g, h, block.Norm2, name + ".norm2"), block.Mlp.Fc1, name + ".mlp.fc1")), block.Mlp.Fc2, name + ".mlp.fc2");
        return g.Node("Add", [h, m]);
    }

    private static string Attention(OnnxGraphBuilder g, string x, VitAttention attn, string name)
    {
        var qkv = Linear(g, x, attn.Qkv, name + ".qkv");
        var split = g.Node("Reshape", [qkv, "shape_qkv"]);
        var heads = g.Node("Transpose", [split], null, Ints("perm", 2, 0, 3, 1, 4)); // [3, N, H, L, D]
        var q = g.Node("Gather", [heads, g.Int64Scalar("index_0", 0)], null, Int("axis", 0));
        var k = g.Node("Gather", [heads, g.Int64Scalar("index_1", 1)], null, Int("axis", 0));
        var v = g.Node("Gather", [heads, g.Int64Scalar("index_2", 2)], null, Int("axis", 0));
        var qs = g.Node("Mul", [q, g.Scalar(attn.Scale)]);
        var kt = g.Node("Transpose", [k], null, Ints("perm", 0, 1, 3, 2));
        var scores = g.Node("Softmax", [g.Node("MatMul", [qs, kt])], null, Int("axis", -1));
        var o = g.Node("MatMul", [scores, v]);                                              // [N, H, L, D]
        var merged = g.Node("Reshape", [g.Node("Transpose", [o], null, Ints("perm", 0, 2, 1, 3)), "shape_tokens"]);
        return Linear(g, merged, attn.Proj, name + ".proj");
    }
}
