using System.Runtime.CompilerServices;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Backend.Tests;

/// <summary>Where the golden fixtures made by tools/make_llava_fixtures.py live.</summary>
internal static class Fixtures
{
    private static readonly Lazy<string> RootPath = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "Backend.Tests", "Fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"tests/Backend.Tests/Fixtures not found above {AppContext.BaseDirectory}.");
    });

    /// <summary>tests/Backend.Tests/Fixtures.</summary>
    public static string Root => RootPath.Value;

    /// <summary>The tiny LLaVA-OneVision fixture folder.</summary>
    public static string LlavaTiny => Path.Combine(Root, "llava-ov-tiny");

    /// <summary>Checkpoint in save_pretrained's layout (fp32, single file, tied embeddings).</summary>
    public static string Model => Path.Combine(LlavaTiny, "model");

    /// <summary>The same weights with the Hub's key names, bf16, sharded, older config spelling.</summary>
    public static string ModelAlt => Path.Combine(LlavaTiny, "model-alt");

    /// <summary>Reference inputs and outputs of transformers.</summary>
    public static string Reference => Path.Combine(LlavaTiny, "reference.safetensors");

    [ModuleInitializer]
    internal static void LoadNative() => TorchRuntime.EnsureLoaded();
}
