using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Packing;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Cache;

public sealed class KVCacheOptionsTests
{
    public static TheoryData<KVCacheOptions, string> InvalidOptions()
    {
        var o = KVCacheOptions.FromPreset("vidkv-1.5/1.58");
        return new TheoryData<KVCacheOptions, string>
        {
            { o with { GroupSize = 1 }, "GroupSize is 1" },
            { o with { GroupSize = 0 }, "GroupSize is 0" },
            { o with { ResidualLength = 100 }, "ResidualLength is 100" },
            { o with { ResidualLength = 0 }, "ResidualLength is 0" },
            { o with { KeyBits = 1.6 }, "KeyBits is 1.6" },
            { o with { KeyBits = 16 }, "keys and values are quantized together" },
            { o with { OutlierBits = 3 }, "OutlierBits is 3" },
            { o with { ValueBits = 1 }, "ValueBits is 1" },
            { o with { TernaryGamma = 0 }, "TernaryGamma is 0" },
            { o with { TernaryGamma = double.NaN }, "TernaryGamma is NaN" },
            { o with { ProtectedFraction = 1 }, "ProtectedFraction is 1" },
            { o with { OutlierThreshold = -1 }, "OutlierThreshold is -1" },
            { o with { TernaryPacking = CodeFormat.Bits4 }, "TernaryPacking is Bits4" },
            { o with { OneBitKeys = (OneBitKeyMode)9 }, "OneBitKeys is 9" },
            { o with { ValueAxis = (QuantizationAxis)5 }, "ValueAxis is 5" },
            { o with { Flush = (FlushPolicy)7 }, "Flush is 7" },
            { o with { MetadataType = ScalarType.Int8 }, "MetadataType is Int8" },
            { o with { ResidualType = ScalarType.Int64 }, "ResidualType is Int64" },
        };
    }

    [Theory]
    [MemberData(nameof(InvalidOptions))]
    public void Validate_InvalidValue_NamesItAndWhatIsAllowed(KVCacheOptions options, string expected)
    {
        var ex = Assert.Throws<ArgumentException>(() => new QuantizedKVCache(options));
        Assert.Contains(expected, ex.Message, StringComparison.Ordinal);
        Assert.Contains("allowed", ex.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void FromPreset_UnknownName_ListsThePresets()
    {
        var ex = Assert.Throws<ArgumentException>(() => KVCacheOptions.FromPreset("vidkv-1/1"));
        Assert.Contains("'vidkv-1/1'", ex.Message, StringComparison.Ordinal);
        foreach (var name in KVCacheOptions.PresetNames)
        {
            Assert.Contains(name, ex.Message, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("FP16", 16, ValueQuantization.None)]
    [InlineData("kivi-2", 2, ValueQuantization.Asymmetric)]
    [InlineData("vidkv-2", 2, ValueQuantization.Asymmetric)]
    [InlineData("vidkv-1.5/2", 1.5, ValueQuantization.Asymmetric)]
    [InlineData("vidkv-1.5/1.58", 1.5, ValueQuantization.Ternary)]
    [InlineData("vidkv-1.25/1.58", 1.25, ValueQuantization.Ternary)]
    [InlineData("vidkv-1.5/1.66", 1.5, ValueQuantization.Protected)]
    [InlineData("vidkv-1.75/1.66", 1.75, ValueQuantization.Protected)]
    public void FromPreset_MatchesTheMethodTable(string name, double keyBits, ValueQuantization values)
    {
        var reference = KVCacheOptions.FromPreset(name);
        var compact = KVCacheOptions.FromPreset(name, CacheProfile.Compact);

        foreach (var o in new[] { reference, compact })
        {
            o.Validate();
            Assert.Equal(keyBits, o.KeyBits);
            Assert.Equal(values, o.Values);
            Assert.Equal(name == "kivi-2" ? QuantizationAxis.PerToken : QuantizationAxis.PerChannel, o.ValueAxis);
            Assert.Equal((32, 128, 0.5, 0.2), (o.GroupSize, o.ResidualLength, o.TernaryGamma, o.ProtectedFraction));
            Assert.Equal(SignReconstruction.ZeroOrScale, o.SignReconstruction);
            Assert.Equal(ChannelStatistic.Range, o.ChannelStatistic);
        }

        Assert.Equal((FlushPolicy.RequantizeAll, CodeFormat.Bits2, true), (reference.Flush, reference.TernaryPacking, reference.ReferenceMetadata));
        Assert.Equal((FlushPolicy.Streaming, CodeFormat.Trits, false), (compact.Flush, compact.TernaryPacking, compact.ReferenceMetadata));
        var expectedOneBit = keyBits == 1.25 ? (OneBitKeyMode.TimeDomain, OneBitKeyMode.TimeDomain) : (OneBitKeyMode.Fft, OneBitKeyMode.Rfft);
        Assert.Equal(expectedOneBit, (reference.OneBitKeys, compact.OneBitKeys));
    }
}
