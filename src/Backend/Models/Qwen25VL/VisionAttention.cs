using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// Self-attention of the Qwen vision blocks: one fused qkv projection, 2-D rotary positions on queries and keys, and
/// attention only within runs of patches (a frame, or a window of one).
/// </summary>
internal sealed class VisionAttention : nn.Module
{
    private readonly LinearLayer qkv;
    private readonly LinearLayer proj;
    private readonly int _heads, _headDim;

    public VisionAttention(int dim, int heads, ScalarType dtype, Device device)
        : base(nameof(VisionAttention))
    {
        (_heads, _headDim) = (heads, dim / heads);
        qkv = new LinearLayer(dim, dim * 3, true, dtype, device);
        proj = new LinearLayer(dim, dim, true, dtype, device);
        register_module(nameof(qkv), qkv);
        register_module(nameof(proj), proj);
    }

    /// <summary>Attention over x [S, D] with rotary tables [S, hd]; each run attends only to itself.</summary>
    public Tensor forward(Tensor x, RotaryTables rotary, IReadOnlyList<(long Start, long Length)> runs)
    {
        using var scope = NewDisposeScope();
        long s = x.shape[0];
        var parts = qkv.forward(x).view(s, 3, _heads, _headDim).permute(1, 2, 0, 3); // [3, H, S, hd]
        var q = RotaryEmbedding.Apply(parts[0], rotary);
        var k = RotaryEmbedding.Apply(parts[1], rotary);
        var v = parts[2];

        // Runs of equal length next to each other go through one batched attention call.
        var outputs = new List<Tensor>();
        for (int i = 0; i < runs.Count;)
        {
            var (start, length) = runs[i];
            int j = i + 1;
            while (j < runs.Count && runs[j].Length == length && runs[j].Start == runs[j - 1].Start + length)
            {
                j++;
            }

            long count = j - i;
            Tensor Batch(Tensor y) => y.narrow(1, start, count * length).view(_heads, count, length, _headDim).transpose(0, 1);
            var o = nn.functional.scaled_dot_product_attention(Batch(q), Batch(k), Batch(v)); // [count, H, L, hd]
            outputs.Add(o.transpose(0, 1).reshape(_heads, count * length, _headDim));
            i = j;
        }

        var attended = outputs.Count == 1 ? outputs[0] : cat(outputs, 1);               // [H, S, hd]
        return proj.forward(attended.transpose(0, 1).reshape(s, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}
