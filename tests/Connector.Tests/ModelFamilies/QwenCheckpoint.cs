namespace VidKV.AI.Connector.Tests.ModelFamilies;

/// <summary>
/// The tiny random-weight Qwen2.5-VL checkpoint made by transformers 5.17 (tools/make_qwen25vl_fixtures.py), committed
/// with the backend's parity fixtures.
/// </summary>
internal static class QwenCheckpoint
{
    private static readonly Lazy<string> Found = new(() =>
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "Backend.Tests", "Fixtures", "qwen25vl-tiny", "model");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException("tests/Backend.Tests/Fixtures/qwen25vl-tiny/model not found.");
    });

    /// <summary>The checkpoint folder (config.json, model.safetensors, tokenizer and processor files).</summary>
    public static string Folder => Found.Value;

    /// <summary>A cache preset the video memory reuses (no semantic token protection).</summary>
    public const string Preset = "vidkv-1.5/1.58";
}
