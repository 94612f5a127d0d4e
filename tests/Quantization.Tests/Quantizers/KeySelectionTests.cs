using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Quantizers;

public sealed class KeySelectionTests
{
    private static readonly long[] Planted = { 3, 17, 40, 41, 77, 100, 101, 127 };

    private static Tensor KeysWithOutliers()
    {
        random.manual_seed(11);
        var keys = randn(2, 4, 96, 128);
        var scale = ones(128);
        scale.index_fill_(0, tensor(Planted), 12f);
        return keys * scale;
    }

    [Theory]
    [InlineData(ChannelStatistic.Range)]
    [InlineData(ChannelStatistic.Variance)]
    [InlineData(ChannelStatistic.OutlierCount)]
    public void Select_FindsPlantedOutlierChannels(ChannelStatistic statistic)
    {
        using var scope = NewDisposeScope();
        var (outliers, easy) = new KeyChannelSelector(statistic).Select(KeysWithOutliers(), Planted.Length);

        Assert.Equal(Planted, Longs(outliers));
        Assert.Equal(128 - Planted.Length, easy.shape[0]);
        Assert.Equal(Enumerable.Range(0, 128).Select(i => (long)i).Except(Planted), Longs(easy));
    }

    [Theory]
    [InlineData(2.0, 128)]
    [InlineData(1.75, 96)]
    [InlineData(1.5, 64)]
    [InlineData(1.25, 32)]
    [InlineData(1.0, 0)]
    public void MixedKeys_SplitChannelsByKeyBits(double keyBits, int outliers)
    {
        using var scope = NewDisposeScope();
        var quantizer = new MixedPrecisionKeyQuantizer(keyBits, new AsymmetricQuantizer(2, QuantizationAxis.PerChannel),
            new OneBitKeyQuantizer(OneBitKeyMode.Fft, new SignQuantizer(QuantizationAxis.PerChannel)), new KeyChannelSelector());
        using var q = quantizer.Quantize(KeysWithOutliers().narrow(2, 0, 64));

        Assert.Equal(outliers, q.OutlierChannels.shape[0]);
        Assert.Equal(128 - outliers, q.EasyChannels.shape[0]);
        Assert.Equal(outliers == 0, q.Outliers is null);
        Assert.Equal(outliers == 128, q.Easy is null);
        if (outliers >= Planted.Length)
        {
            Assert.Subset(Longs(q.OutlierChannels).ToHashSet(), Planted.ToHashSet());
        }
    }

    [Fact]
    public void MixedKeys_OutlierChannelsReadBackAtTwoBitPrecision()
    {
        using var scope = NewDisposeScope();
        var keys = KeysWithOutliers().narrow(2, 0, 64);
        var outlierQ = new AsymmetricQuantizer(2, QuantizationAxis.PerChannel, 32, ScalarType.Float32);
        var quantizer = new MixedPrecisionKeyQuantizer(1.5, outlierQ,
            new OneBitKeyQuantizer(OneBitKeyMode.Rfft, new SignQuantizer(QuantizationAxis.PerChannel, metadataType: ScalarType.Float32)), new KeyChannelSelector());
        using var q = quantizer.Quantize(keys);
        var deq = quantizer.Dequantize(q);

        var idx = q.OutlierChannels;
        Assert.Equal(0, MaxAbsDiff(deq.index_select(-1, idx), outlierQ.Dequantize(q.Outliers!)));
    }

    [Fact]
    public void MixedKeys_InvalidKeyBits_Rejected()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => new MixedPrecisionKeyQuantizer(1.6, new AsymmetricQuantizer(2, QuantizationAxis.PerChannel),
            new OneBitKeyQuantizer(OneBitKeyMode.Fft, new SignQuantizer(QuantizationAxis.PerChannel)), new KeyChannelSelector()));
        Assert.Contains("1.25, 1.5, 1.75 or 2", ex.Message, StringComparison.Ordinal);
    }
}
