using VidKV.AI.Quantization.Quantizers;

namespace VidKV.AI.Quantization.Cache;

/// <summary>A run of consecutive cached tokens held in quantized form. Owns its tensors.</summary>
public sealed class QuantizedBlock : IDisposable
{
    internal QuantizedBlock(long start, QuantizedKeys keys, QuantizedValues values)
    {
        Start = start;
        Keys = keys;
        Values = values;
    }

    /// <summary>Position of the block's first token in the sequence.</summary>
    public long Start { get; }

    /// <summary>Number of tokens.</summary>
    public long Tokens => Keys.Shape[2];

    /// <summary>Quantized keys.</summary>
    public QuantizedKeys Keys { get; }

    /// <summary>Quantized values.</summary>
    public QuantizedValues Values { get; }

    /// <inheritdoc />
    public void Dispose()
    {
        Keys.Dispose();
        Values.Dispose();
    }
}
