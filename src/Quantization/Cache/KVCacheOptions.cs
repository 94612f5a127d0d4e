using System.Globalization;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Cache;

/// <summary>
/// Settings of a <see cref="QuantizedKVCache"/>. Start from a preset (<see cref="FromPreset"/>) and change what
/// you need with <c>with</c>; defaults are the paper's settings. <see cref="Validate"/> runs when a cache is built.
/// </summary>
/// <example><code>
/// var options = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact) with { ValueAxis = QuantizationAxis.PerToken };
/// using var cache = new QuantizedKVCache(options);
/// </code></example>
public sealed record KVCacheOptions
{
    /// <summary>The preset this configuration came from (informational).</summary>
    public string Preset { get; init; } = "custom";

    /// <summary>Fidelity profile the defaults came from (informational; every switch below is explicit).</summary>
    public CacheProfile Profile { get; init; } = CacheProfile.Reference;

    /// <summary>G: tokens per per-channel group, channels per per-token group. Default 32.</summary>
    public int GroupSize { get; init; } = 32;

    /// <summary>R: full-precision residual length that triggers a flush; a multiple of <see cref="GroupSize"/>. Default 128.</summary>
    public int ResidualLength { get; init; } = 128;

    /// <summary>Average key bits: 16 (not quantized), 2, 1.75, 1.5, 1.25 or 1.</summary>
    public double KeyBits { get; init; } = 16;

    /// <summary>Bits of the outlier key channels (2, 4 or 8). Default 2.</summary>
    public int OutlierBits { get; init; } = 2;

    /// <summary>How easy key channels are stored at 1 bit.</summary>
    public OneBitKeyMode OneBitKeys { get; init; } = OneBitKeyMode.Fft;

    /// <summary>How a 1-bit sign code is read back.</summary>
    public SignReconstruction SignReconstruction { get; init; } = SignReconstruction.ZeroOrScale;

    /// <summary>Statistic that ranks key channels.</summary>
    public ChannelStatistic ChannelStatistic { get; init; } = ChannelStatistic.Range;

    /// <summary>M for <see cref="ChannelStatistic.OutlierCount"/>. Default 3.</summary>
    public double OutlierThreshold { get; init; } = 3.0;

    /// <summary>How values are stored.</summary>
    public ValueQuantization Values { get; init; } = ValueQuantization.None;

    /// <summary>Bits of asymmetric values and of protected tokens (2, 4 or 8). Default 2.</summary>
    public int ValueBits { get; init; } = 2;

    /// <summary>Value grouping axis; per channel is the method's finding.</summary>
    public QuantizationAxis ValueAxis { get; init; } = QuantizationAxis.PerChannel;

    /// <summary>Ternary threshold factor gamma in (0, 2]. Default 0.5 (the released code; the paper reports 0.7).</summary>
    public double TernaryGamma { get; init; } = 0.5;

    /// <summary>Store a per-group scale with ternary values and apply it when reading back.</summary>
    public bool ScaledTernary { get; init; }

    /// <summary>Ternary code packing: <see cref="CodeFormat.Trits"/> or <see cref="CodeFormat.Bits2"/>.</summary>
    public CodeFormat TernaryPacking { get; init; } = CodeFormat.Bits2;

    /// <summary>Share of scored (visual) tokens protected by STP, in (0, 1). Default 0.2.</summary>
    public double ProtectedFraction { get; init; } = 0.2;

    /// <summary>Flush policy.</summary>
    public FlushPolicy Flush { get; init; } = FlushPolicy.RequantizeAll;

    /// <summary>Store an fp16 scale and zero point with every group, used or not, as the released code does.</summary>
    public bool ReferenceMetadata { get; init; } = true;

    /// <summary>Storage type of scales and zero points (Float16, BFloat16 or Float32).</summary>
    public ScalarType MetadataType { get; init; } = ScalarType.Float16;

    /// <summary>
    /// Storage type of unquantized tokens (the fp16 preset's whole cache, the other presets' full-precision residual);
    /// <see langword="null"/> (default) stores them in 16 bits (<see cref="DefaultResidualType"/>): in the keys' own type
    /// when it is Float16 or BFloat16, else (float32 models) in Float16, so that an uncompressed cache holds what its
    /// FP16 figure says. Float32 keeps full precision at twice the bytes. Float16 saturates beyond ±65504.
    /// </summary>
    public ScalarType? ResidualType { get; init; }

    /// <summary>
    /// How a model attends over this cache when decoding: <see cref="DecodeAttention.Fused"/> reads the packed codes;
    /// <see cref="DecodeAttention.Dequantize"/> rebuilds the full-precision cache first, as the released code does;
    /// <see cref="DecodeAttention.Auto"/> (default) picks the faster of the two for the cache's device.
    /// </summary>
    public DecodeAttention DecodeAttention { get; init; } = DecodeAttention.Auto;

    /// <summary>The preset names, in the paper's order.</summary>
    public static IReadOnlyList<string> PresetNames { get; } = new[]
    {
        "fp16", "kivi-2", "vidkv-2", "vidkv-1.5/2", "vidkv-1.5/1.58", "vidkv-1.25/1.58", "vidkv-1.5/1.66", "vidkv-1.75/1.66",
    };

    /// <summary>
    /// The storage type of unquantized tokens when <see cref="ResidualType"/> is <see langword="null"/>: keys arriving as
    /// Float16 or BFloat16 stay in their type; any other floating type is stored as Float16 (11 significant bits, against
    /// bfloat16's 8).
    /// </summary>
    /// <param name="inputType">The type the keys and values arrive in.</param>
    public static ScalarType DefaultResidualType(ScalarType inputType) => inputType is ScalarType.Float16 or ScalarType.BFloat16 ? inputType : ScalarType.Float16;

    /// <summary>Whether any quantization happens.</summary>
    public bool IsQuantized => Values != ValueQuantization.None;

    /// <summary>The settings of a named preset (case-insensitive) in a profile.</summary>
    /// <exception cref="ArgumentException">The name is not one of <see cref="PresetNames"/>.</exception>
    public static KVCacheOptions FromPreset(string name, CacheProfile profile = CacheProfile.Reference)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (!Enum.IsDefined(profile))
        {
            throw new ArgumentOutOfRangeException(nameof(profile), profile, "Allowed: Reference, Compact.");
        }

        string key = name.Trim().ToLowerInvariant();
        var (keyBits, values, valueAxis) = key switch
        {
            "fp16" => (16.0, ValueQuantization.None, QuantizationAxis.PerChannel),
            "kivi-2" => (2.0, ValueQuantization.Asymmetric, QuantizationAxis.PerToken),
            "vidkv-2" => (2.0, ValueQuantization.Asymmetric, QuantizationAxis.PerChannel),
            "vidkv-1.5/2" => (1.5, ValueQuantization.Asymmetric, QuantizationAxis.PerChannel),
            "vidkv-1.5/1.58" => (1.5, ValueQuantization.Ternary, QuantizationAxis.PerChannel),
            "vidkv-1.25/1.58" => (1.25, ValueQuantization.Ternary, QuantizationAxis.PerChannel),
            "vidkv-1.5/1.66" => (1.5, ValueQuantization.Protected, QuantizationAxis.PerChannel),
            "vidkv-1.75/1.66" => (1.75, ValueQuantization.Protected, QuantizationAxis.PerChannel),
            _ => throw new ArgumentException($"Unknown KV cache preset '{name}'. Allowed: {string.Join(", ", PresetNames)}.", nameof(name)),
        };

        bool reference = profile == CacheProfile.Reference;
        return new KVCacheOptions
        {
            Preset = key,
            Profile = profile,
            KeyBits = keyBits,
            Values = values,
            ValueAxis = valueAxis,
            // The paper's 1.25-bit keys use plain 1-bit easy channels; otherwise FFT (Reference) or real FFT (Compact).
            OneBitKeys = keyBits == 1.25 ? OneBitKeyMode.TimeDomain : reference ? OneBitKeyMode.Fft : OneBitKeyMode.Rfft,
            TernaryPacking = reference ? CodeFormat.Bits2 : CodeFormat.Trits,
            ReferenceMetadata = reference,
            Flush = reference ? FlushPolicy.RequantizeAll : FlushPolicy.Streaming,
        };
    }

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        var errors = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok)
            {
                errors.Add(message);
            }
        }

        Check(Enum.IsDefined(DecodeAttention), $"DecodeAttention is {(int)DecodeAttention}; allowed: {string.Join(", ", Enum.GetNames<DecodeAttention>())}.");

        string N(double v) => v.ToString(CultureInfo.InvariantCulture);
        Check(GroupSize is >= 2 and <= 4096, $"GroupSize is {GroupSize}; allowed: 2 to 4096 (the method uses 32).");
        Check(GroupSize < 2 || (ResidualLength >= GroupSize && ResidualLength % GroupSize == 0),
            $"ResidualLength is {ResidualLength}; allowed: a positive multiple of GroupSize ({GroupSize}), e.g. 128.");
        Check(KeyBits == 16 || MixedPrecisionKeyQuantizer.AllowedKeyBits.Contains(KeyBits), $"KeyBits is {N(KeyBits)}; allowed: 16 (not quantized), 2, 1.75, 1.5, 1.25 or 1.");
        Check(OutlierBits is 2 or 4 or 8, $"OutlierBits is {OutlierBits}; allowed: 2, 4 or 8.");
        Check(ValueBits is 2 or 4 or 8, $"ValueBits is {ValueBits}; allowed: 2, 4 or 8.");
        Check(Enum.IsDefined(OneBitKeys), $"OneBitKeys is {OneBitKeys}; allowed: Fft, Rfft, TimeDomain.");
        Check(Enum.IsDefined(SignReconstruction), $"SignReconstruction is {SignReconstruction}; allowed: ZeroOrScale, PlusMinusScale.");
        Check(Enum.IsDefined(ChannelStatistic), $"ChannelStatistic is {ChannelStatistic}; allowed: Range, Variance, OutlierCount.");
        Check(OutlierThreshold > 0, $"OutlierThreshold is {N(OutlierThreshold)}; allowed: a positive number (the paper uses 3).");
        Check(Enum.IsDefined(Values), $"Values is {Values}; allowed: None, Asymmetric, Ternary, Protected.");
        Check(Enum.IsDefined(ValueAxis), $"ValueAxis is {ValueAxis}; allowed: PerChannel, PerToken.");
        Check(TernaryGamma > 0 && TernaryGamma <= 2, $"TernaryGamma is {N(TernaryGamma)}; allowed: (0, 2] (0.5 in the released code, 0.7 in the paper).");
        Check(TernaryPacking is CodeFormat.Trits or CodeFormat.Bits2, $"TernaryPacking is {TernaryPacking}; allowed: Trits or Bits2.");
        Check(ProtectedFraction > 0 && ProtectedFraction < 1, $"ProtectedFraction is {N(ProtectedFraction)}; allowed: (0, 1) (the paper uses 0.2).");
        Check(Enum.IsDefined(Flush), $"Flush is {Flush}; allowed: RequantizeAll, Streaming.");
        Check(MetadataType is ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32, $"MetadataType is {MetadataType}; allowed: Float16, BFloat16, Float32.");
        Check(ResidualType is null or ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Float32, $"ResidualType is {ResidualType}; allowed: null (16 bits: the input type when it is Float16 or BFloat16, else Float16), Float16, BFloat16, Float32.");
        Check((KeyBits == 16) == (Values == ValueQuantization.None),
            $"KeyBits is {N(KeyBits)} and Values is {Values}: keys and values are quantized together or not at all; allowed: KeyBits 16 with Values None (the fp16 preset), or a quantized KeyBits with Asymmetric, Ternary or Protected values.");
        if (errors.Count > 0)
        {
            throw new ArgumentException($"Invalid KV cache options (preset '{Preset}'): " + string.Join(" ", errors));
        }
    }
}
