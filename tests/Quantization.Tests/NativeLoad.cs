using System.Runtime.CompilerServices;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Quantization.Tests;

internal static class NativeLoad
{
    // Tests may touch TorchSharp before any library type: resolve the native layer first.
    [ModuleInitializer]
    internal static void Initialize() => TorchRuntime.EnsureLoaded();
}
