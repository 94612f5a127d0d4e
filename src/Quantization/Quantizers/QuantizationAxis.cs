namespace VidKV.AI.Quantization.Quantizers;

/// <summary>Which elements share a quantization group (scale and zero point).</summary>
public enum QuantizationAxis
{
    /// <summary>A group is <c>G</c> consecutive tokens of one channel (KIVI keys, VidKV values).</summary>
    PerChannel,

    /// <summary>A group is <c>G</c> consecutive channels of one token (KIVI values).</summary>
    PerToken,
}
