using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Rotary position embedding (RoPE, rotate-half form): the cos/sin tables for given positions, and their application.</summary>
internal static class RotaryEmbedding
{
    /// <summary>cos and sin [T, headDim] in float32 for positions [T].</summary>
    public static RotaryTables Tables(Tensor positions, int headDim, double theta)
    {
        using var scope = NewDisposeScope();
        var inverse = Enumerable.Range(0, headDim / 2).Select(i => (float)(1.0 / Math.Pow(theta, 2.0 * i / headDim))).ToArray();
        var invFreq = tensor(inverse, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(1) * invFreq.unsqueeze(0); // [T, hd/2]
        var emb = cat(new[] { freqs, freqs }, -1);                                          // [T, hd]
        return new RotaryTables(emb.cos().MoveToOuterDisposeScope(), emb.sin().MoveToOuterDisposeScope());
    }

    /// <summary>x·cos + rotate_half(x)·sin for x [B, H, T, hd], computed in float32.</summary>
    public static Tensor Apply(Tensor x, RotaryTables tables)
    {
        using var scope = NewDisposeScope();
        var xf = x.to(ScalarType.Float32);
        long half = x.size(-1) / 2;
        var rotated = cat(new[] { -xf.narrow(-1, half, half), xf.narrow(-1, 0, half) }, -1);
        return Scalars.Add(xf * tables.Cos, rotated * tables.Sin).to(x.dtype).MoveToOuterDisposeScope();
    }
}
