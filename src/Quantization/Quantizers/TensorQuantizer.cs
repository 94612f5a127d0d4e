using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// A group-wise quantizer of [..., tokens, channels] tensors. Quantizers are immutable and thread-safe.
/// </summary>
internal abstract class TensorQuantizer
{
    /// <summary>Initializes the grouping shared by every quantizer.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message says which.</exception>
    protected TensorQuantizer(QuantizationAxis axis, int groupSize, ScalarType metadataType)
    {
        if (!Enum.IsDefined(axis))
        {
            throw new ArgumentOutOfRangeException(nameof(axis), axis, "Allowed: PerChannel, PerToken.");
        }

        if (groupSize < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(groupSize), groupSize, "The group size must be at least 2 (a one-element group is silently lossless).");
        }

        if (metadataType is not (ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32))
        {
            throw new ArgumentOutOfRangeException(nameof(metadataType), metadataType, "Scales and zero points are stored as Float16, BFloat16 or Float32.");
        }

        Axis = axis;
        GroupSize = groupSize;
        MetadataType = metadataType;
    }

    /// <summary>Which elements share a group.</summary>
    public QuantizationAxis Axis { get; }

    /// <summary>Elements per group.</summary>
    public int GroupSize { get; }

    /// <summary>Storage type of scales and zero points.</summary>
    public ScalarType MetadataType { get; }

    /// <summary>
    /// Tokens quantized per pass. Working in runs of a few hundred tokens keeps the temporaries in cache and out of
    /// the allocator's page-mapping path: about ten times faster than whole 16k-token layers on a CPU.
    /// </summary>
    internal const int ChunkTokens = 256;

    /// <summary>Quantizes <paramref name="x"/> ([..., tokens, channels], any floating type).</summary>
    public QuantizedTensor Quantize(Tensor x)
    {
        CheckInput(x);
        var result = TokenChunks.Quantize(x, ChunkLength, QuantizeCore, MetadataRowsPerToken);

        // Subclasses hold Scalars the native calls read; keep them (through this) alive until every call has returned.
        GC.KeepAlive(this);
        return result;
    }

    /// <summary>Reconstructs a float32 tensor of the original shape.</summary>
    public Tensor Dequantize(QuantizedTensor q)
    {
        ArgumentNullException.ThrowIfNull(q);
        var result = TokenChunks.Dequantize(q, ChunkLength, DequantizeCore, MetadataRowsPerToken);
        GC.KeepAlive(this);
        return result;
    }

    /// <summary>Quantizes one run of tokens.</summary>
    protected abstract QuantizedTensor QuantizeCore(Tensor x);

    /// <summary>Reconstructs one run of tokens (float32).</summary>
    protected abstract Tensor DequantizeCore(QuantizedTensor q);

    /// <summary>Tokens per chunk: a whole number of per-channel groups.</summary>
    private long ChunkLength => Axis == QuantizationAxis.PerChannel ? Math.Max(1, ChunkTokens / GroupSize) * GroupSize : ChunkTokens;

    /// <summary>Metadata rows (dimension -3 of a scale) per token: 1/G per channel, 1 per token.</summary>
    private double MetadataRowsPerToken => Axis == QuantizationAxis.PerChannel ? 1.0 / GroupSize : 1.0;

    /// <summary>Rounds a float32 tensor through the metadata type and back, as it will be read after storing.</summary>
    protected Tensor Stored(Tensor x) => x.to(MetadataType);

    /// <summary>Checks that a tensor is a floating-point [..., tokens, channels] tensor.</summary>
    protected static void CheckInput(Tensor x)
    {
        ArgumentNullException.ThrowIfNull(x);
        if (!x.is_floating_point())
        {
            throw new ArgumentException($"Only floating-point tensors can be quantized; got {x.dtype}.", nameof(x));
        }
    }
}
