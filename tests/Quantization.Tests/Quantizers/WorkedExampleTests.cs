using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Quantizers;

/// <summary>The worked examples of the method page (G = 4).</summary>
public sealed class WorkedExampleTests
{
    private static readonly float[] Group = { 0.9f, -1.3f, 0.2f, 2.1f };

    // One channel, four tokens: a per-channel group is the four tokens.
    private static Tensor Column() => tensor(Group).reshape(4, 1);

    [Theory]
    [InlineData(ScalarType.Float32, 1e-5)]
    [InlineData(ScalarType.Float16, 2e-3)]
    public void Asym2_MatchesWorkedExample(ScalarType metadata, double tolerance)
    {
        using var scope = NewDisposeScope();
        var quantizer = new AsymmetricQuantizer(2, QuantizationAxis.PerChannel, groupSize: 4, metadataType: metadata);
        using var q = quantizer.Quantize(Column());

        Assert.Equal(new long[] { 2, 0, 1, 3 }, Longs(q.UnpackCodes()));
        Close(new[] { -1.3 }, q.Zero!, tolerance);
        Close(new[] { 1.13333 }, q.Scale!, tolerance);
        Close(new[] { 0.96667, -1.3, -0.16667, 2.1 }, quantizer.Dequantize(q), tolerance * 3);
    }

    [Theory]
    [InlineData(0.5)]
    [InlineData(0.7)]
    public void Ternary_MatchesWorkedExample(double gamma)
    {
        using var scope = NewDisposeScope();
        var quantizer = new TernaryQuantizer(QuantizationAxis.PerChannel, groupSize: 4, gamma: gamma);
        using var q = quantizer.Quantize(Column());

        Close(new[] { 1.0, -1, 0, 1 }, quantizer.Dequantize(q), 0);
    }

    [Fact]
    public void TernaryReference_StoresMeanAbsAndMinusOne()
    {
        using var scope = NewDisposeScope();
        var quantizer = new TernaryQuantizer(QuantizationAxis.PerChannel, 4, 0.5, packing: VidKV.AI.Quantization.Packing.CodeFormat.Bits2, metadataType: ScalarType.Float32, referenceMetadata: true);
        using var q = quantizer.Quantize(Column());

        Close(new[] { 1.125 }, q.Scale!, 1e-6);
        Close(new[] { -1.0 }, q.Zero!, 0);
        Close(new[] { 1.0, -1, 0, 1 }, quantizer.Dequantize(q), 0);
    }

    [Fact]
    public void Sign_MatchesWorkedExample()
    {
        using var scope = NewDisposeScope();
        var quantizer = new SignQuantizer(QuantizationAxis.PerChannel, groupSize: 4, metadataType: ScalarType.Float32);
        using var q = quantizer.Quantize(Column());

        Assert.Equal(new long[] { 1, 0, 1, 1 }, Longs(q.UnpackCodes()));
        Close(new[] { 1.125 }, q.Scale!, 1e-6);
        Close(new[] { 1.125, 0, 1.125, 1.125 }, quantizer.Dequantize(q), 1e-6);
    }

    [Fact]
    public void Sign_PlusMinus_ReadsBackSignedScale()
    {
        using var scope = NewDisposeScope();
        var quantizer = new SignQuantizer(QuantizationAxis.PerChannel, 4, SignReconstruction.PlusMinusScale, ScalarType.Float32);
        using var q = quantizer.Quantize(Column());

        Close(new[] { 1.125, -1.125, 1.125, 1.125 }, quantizer.Dequantize(q), 1e-6);
    }

    [Fact]
    public void Fft_InterleavesRealAndImaginaryParts()
    {
        using var scope = NewDisposeScope();
        var token = tensor(new[] { 0.5f, -1.0f, 2.0f, 0.25f }).reshape(1, 4);

        var components = OneBitKeyQuantizer.ToComponents(token, OneBitKeyMode.Fft);

        Close(new[] { 1.75, 0, -1.5, 1.25, 3.25, 0, -1.5, -1.25 }, components, 1e-6);
    }

    [Fact]
    public void Rfft_KeepsExactlyDeIndependentReals()
    {
        using var scope = NewDisposeScope();
        var token = tensor(new[] { 0.5f, -1.0f, 2.0f, 0.25f }).reshape(1, 4);

        var components = OneBitKeyQuantizer.ToComponents(token, OneBitKeyMode.Rfft);

        // Real parts of bins 0, 1, 2, then the imaginary part of bin 1 (bins 0 and 2 have none).
        Close(new[] { 1.75, -1.5, 3.25, 1.25 }, components, 1e-6);
    }
}
