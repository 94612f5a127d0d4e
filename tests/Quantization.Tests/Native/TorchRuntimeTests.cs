using TorchSharp;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Quantization.Tests.Native;

public sealed class TorchRuntimeTests
{
    [Fact]
    public void EnsureLoaded_TorchSharpOperationsRun()
    {
        TorchRuntime.EnsureLoaded();
        using var a = torch.arange(6, dtype: torch.float32).reshape(2, 3);
        using var b = torch.fft.fft_(a);
        Assert.Equal(15f, a.sum().item<float>());
        Assert.Equal(3f, b.real[0, 0].item<float>());
        Assert.DoesNotContain("not loaded", TorchRuntime.Description, StringComparison.Ordinal);
    }
}
