using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;
using static VidKV.AI.Quantization.Tests.TensorAssert;

namespace VidKV.AI.Quantization.Tests.Quantizers;

/// <summary>Long inputs are quantized in runs of tokens; the result must equal quantizing each group on its own.</summary>
public sealed class ChunkingTests
{
    public static TheoryData<string> Quantizers() => new() { "asym-channel", "asym-token", "sign", "ternary-channel", "ternary-token-scaled", "fft", "rfft" };

    private static (Func<Tensor, QuantizedTensor> Quantize, Func<QuantizedTensor, Tensor> Dequantize, long Window) Make(string name) => name switch
    {
        "asym-channel" => Wrap(new AsymmetricQuantizer(2, QuantizationAxis.PerChannel), 32),
        "asym-token" => Wrap(new AsymmetricQuantizer(4, QuantizationAxis.PerToken), 1),
        "sign" => Wrap(new SignQuantizer(QuantizationAxis.PerChannel, storeZeroPoint: true), 32),
        "ternary-channel" => Wrap(new TernaryQuantizer(QuantizationAxis.PerChannel, referenceMetadata: true), 32),
        "ternary-token-scaled" => Wrap(new TernaryQuantizer(QuantizationAxis.PerToken, scaled: true), 1),
        _ => WrapOneBit(new OneBitKeyQuantizer(name == "fft" ? OneBitKeyMode.Fft : OneBitKeyMode.Rfft, new SignQuantizer(QuantizationAxis.PerChannel))),
    };

    private static (Func<Tensor, QuantizedTensor>, Func<QuantizedTensor, Tensor>, long) Wrap(TensorQuantizer q, long window) => (q.Quantize, q.Dequantize, window);

    private static (Func<Tensor, QuantizedTensor>, Func<QuantizedTensor, Tensor>, long) WrapOneBit(OneBitKeyQuantizer q) => (q.Quantize, t => q.Dequantize(t, 64), 32);

    [Theory]
    [MemberData(nameof(Quantizers))]
    public void LongInput_EqualsEachGroupQuantizedAlone(string name)
    {
        using var scope = NewDisposeScope();
        random.manual_seed(9);
        var (quantize, dequantize, window) = Make(name);
        long n = window == 1 ? 1001 : 992;
        var x = randn(2, 3, n, 64).half();

        using var whole = quantize(x);
        var all = dequantize(whole);

        Assert.Equal(x.shape, all.shape);
        foreach (long start in new long[] { 0, 224, 256, 480, 512, n - window })
        {
            var piece = x.narrow(2, start, window);
            using var alone = quantize(piece);
            Assert.Equal(Longs(alone.UnpackCodes()), Longs(whole.UnpackCodes().narrow(-2, start, window)));
            Assert.True(MaxAbsDiff(dequantize(alone), all.narrow(2, start, window)) < 1e-6, $"{name}: window at {start}");
        }
    }
}
