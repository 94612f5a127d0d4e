using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>Values of one block: protected tokens (if any) and the rest, each with its own quantizer. Owns its tensors.</summary>
internal sealed class QuantizedValues : IDisposable
{
    internal QuantizedValues(long[] shape, Tensor? protectedTokens, QuantizedTensor? protectedValues, QuantizedTensor rest)
    {
        Shape = shape;
        ProtectedTokens = protectedTokens?.DetachFromDisposeScope();
        Protected = protectedValues;
        Rest = rest;
    }

    /// <summary>Logical shape [B, H, N, D].</summary>
    public long[] Shape { get; }

    /// <summary>Ascending int64 positions [B, k] of the protected tokens, or <see langword="null"/>.</summary>
    public Tensor? ProtectedTokens { get; }

    /// <summary>Protected tokens' values [B, H, k, D], or <see langword="null"/>.</summary>
    public QuantizedTensor? Protected { get; }

    /// <summary>The other tokens' values [B, H, N - k, D] (all tokens when none are protected).</summary>
    public QuantizedTensor Rest { get; }

    /// <summary>Bytes of packed codes.</summary>
    public long CodeBytes => (Protected?.CodeBytes ?? 0) + Rest.CodeBytes;

    /// <summary>Bytes of scales and zero points.</summary>
    public long MetadataBytes => (Protected?.MetadataBytes ?? 0) + Rest.MetadataBytes;

    /// <summary>Bytes of the protected positions.</summary>
    public long IndexBytes => QuantizedTensor.Bytes(ProtectedTokens);

    /// <inheritdoc />
    public void Dispose()
    {
        ProtectedTokens?.Dispose();
        Protected?.Dispose();
        Rest.Dispose();
    }
}
