using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Quantizers;

public sealed class QuantizerBoundTests
{
    [Theory]
    [InlineData(2, QuantizationAxis.PerChannel)]
    [InlineData(4, QuantizationAxis.PerChannel)]
    [InlineData(8, QuantizationAxis.PerChannel)]
    [InlineData(2, QuantizationAxis.PerToken)]
    [InlineData(4, QuantizationAxis.PerToken)]
    [InlineData(8, QuantizationAxis.PerToken)]
    public void Asymmetric_ErrorAtMostHalfAStep(int bits, QuantizationAxis axis)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(bits);
        var x = randn(2, 3, 64, 96) * 3 + 1;
        var quantizer = new AsymmetricQuantizer(bits, axis, 32, ScalarType.Float32);
        using var q = quantizer.Quantize(x);
        var err = (quantizer.Dequantize(q) - x).abs();

        // Each group's bound is half its step; compare group-wise.
        var (g, dim) = axis == QuantizationAxis.PerChannel ? (err.reshape(2, 3, 2, 32, 96), -2L) : (err.reshape(2, 3, 64, 3, 32), -1L);
        var worst = g.amax(new[] { dim }, keepdim: true);
        Assert.True((worst <= (q.Scale! * 0.5) + 1e-5).all().item<bool>(), $"{bits}-bit error exceeds half a step");
        Assert.Equal(Longs(q.UnpackCodes().amax()).Single(), (1 << bits) - 1);
    }

    [Fact]
    public void Asymmetric_ConstantGroup_IsExactWithZeroCodes()
    {
        using var scope = NewDisposeScope();
        var x = full(1, 1, 32, 4, 2.5f);
        var quantizer = new AsymmetricQuantizer(2, QuantizationAxis.PerChannel);
        using var q = quantizer.Quantize(x);

        Assert.Equal(0, Longs(q.UnpackCodes()).Max());
        Assert.Equal(0, MaxAbsDiff(quantizer.Dequantize(q), x));
    }

    [Fact]
    public void Sign_ReconstructionIsBitTimesGroupMeanAbs()
    {
        using var scope = NewDisposeScope();
        random.manual_seed(3);
        var x = randn(1, 2, 64, 8);
        var quantizer = new SignQuantizer(QuantizationAxis.PerChannel, 32, metadataType: ScalarType.Float32);
        using var q = quantizer.Quantize(x);

        var meanAbs = x.abs().reshape(1, 2, 2, 32, 8).mean(new[] { -2L }, keepdim: true);
        var expected = (x.ge(0).to(ScalarType.Float32).reshape(1, 2, 2, 32, 8) * meanAbs).reshape(x.shape);
        Assert.True(MaxAbsDiff(quantizer.Dequantize(q), expected) < 1e-6);
    }

    [Theory]
    [InlineData(0.5, false)]
    [InlineData(0.7, false)]
    [InlineData(0.5, true)]
    public void Ternary_CodesFollowTheThreshold(double gamma, bool scaled)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(4);
        var x = randn(1, 2, 32, 64);
        var quantizer = new TernaryQuantizer(QuantizationAxis.PerToken, 32, gamma, scaled, metadataType: ScalarType.Float32);
        using var q = quantizer.Quantize(x);

        var groups = x.reshape(1, 2, 32, 2, 32);
        var t = groups.abs().mean(new[] { -1L }, keepdim: true) * gamma;
        var expected = (groups.gt(t).to(ScalarType.Float32) - groups.lt(-t).to(ScalarType.Float32)).reshape(x.shape);
        var signs = (q.UnpackCodes().to(ScalarType.Float32) - 1).reshape(x.shape);
        Assert.Equal(0, MaxAbsDiff(signs, expected));
        if (scaled)
        {
            // The least-squares scale beats the bare {-1, 0, 1} and any nearby scale.
            var deq = quantizer.Dequantize(q);
            double err = (deq - x).pow(2).sum().item<float>();
            Assert.True(err < (expected - x).pow(2).sum().item<float>());
            Assert.True(err <= (deq * 1.05 - x).pow(2).sum().item<float>());
            Assert.True(err <= (deq * 0.95 - x).pow(2).sum().item<float>());
        }
    }

    [Theory]
    [InlineData(OneBitKeyMode.Fft, 64)]
    [InlineData(OneBitKeyMode.Fft, 63)]
    [InlineData(OneBitKeyMode.Rfft, 64)]
    [InlineData(OneBitKeyMode.Rfft, 63)]
    [InlineData(OneBitKeyMode.TimeDomain, 64)]
    public void Components_InverseIsExact(OneBitKeyMode mode, long channels)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(5);
        var x = randn(2, 3, 32, channels);

        var c = OneBitKeyQuantizer.ToComponents(x, mode);

        Assert.Equal(OneBitKeyQuantizer.ComponentCount(mode, channels), c.shape[^1]);
        Assert.True(MaxAbsDiff(OneBitKeyQuantizer.FromComponents(c, mode, channels), x) < 1e-5);
    }

    [Theory]
    [InlineData(OneBitKeyMode.Fft)]
    [InlineData(OneBitKeyMode.Rfft)]
    public void OneBitKeys_DequantizeIsInverseTransformOfSignCodes(OneBitKeyMode mode)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(6);
        var x = randn(1, 2, 64, 32);
        var sign = new SignQuantizer(QuantizationAxis.PerChannel, 32, metadataType: ScalarType.Float32);
        var quantizer = new OneBitKeyQuantizer(mode, sign);
        using var q = quantizer.Quantize(x);

        var components = OneBitKeyQuantizer.ToComponents(x, mode);
        using var direct = sign.Quantize(components);
        var expected = OneBitKeyQuantizer.FromComponents(sign.Dequantize(direct), mode, 32);
        Assert.Equal(q.Shape, direct.Shape);
        Assert.True(MaxAbsDiff(quantizer.Dequantize(q, 32), expected) < 1e-5);
        Assert.Equal(Longs(direct.UnpackCodes()), Longs(q.UnpackCodes()));
    }

    [Fact]
    public void PerChannel_PartialGroup_IsRejected()
    {
        using var scope = NewDisposeScope();
        var x = randn(1, 1, 33, 8);
        foreach (TensorQuantizer quantizer in new TensorQuantizer[]
        {
            new AsymmetricQuantizer(2, QuantizationAxis.PerChannel), new SignQuantizer(QuantizationAxis.PerChannel), new TernaryQuantizer(QuantizationAxis.PerChannel),
        })
        {
            var ex = Assert.Throws<ArgumentException>(() => quantizer.Quantize(x));
            Assert.Contains("33 tokens", ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Quantizers_InvalidSettings_AreRejectedWithReasons()
    {
        Assert.Contains("2, 4 or 8", Assert.Throws<ArgumentOutOfRangeException>(() => new AsymmetricQuantizer(3, QuantizationAxis.PerChannel)).Message, StringComparison.Ordinal);
        Assert.Contains("at least 2", Assert.Throws<ArgumentOutOfRangeException>(() => new AsymmetricQuantizer(2, QuantizationAxis.PerChannel, 1)).Message, StringComparison.Ordinal);
        Assert.Contains("(0, 2]", Assert.Throws<ArgumentOutOfRangeException>(() => new TernaryQuantizer(QuantizationAxis.PerChannel, gamma: 0)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => new TernaryQuantizer(QuantizationAxis.PerChannel, packing: VidKV.AI.Quantization.Packing.CodeFormat.Bits4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SignQuantizer(QuantizationAxis.PerChannel, metadataType: ScalarType.Int32));
    }
}
