using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using SkiaSharp;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Backend.Text;
using ChatRole = Microsoft.Extensions.AI.ChatRole;
using VidKV.AI.Training;
using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Connector.Tests;

/// <summary>
/// A checkpoint of the built-in model's architecture with random weights (seeded), a tokenizer trained on a slice of
/// the synthetic task's language, and media made at test time: a synthetic scene as MP4, a PNG. Made once per run in a
/// temporary folder deleted at exit.
/// </summary>
internal static class TinyModel
{
    private static readonly Lazy<string> Root = new(() =>
    {
        string root = Directory.CreateTempSubdirectory("vidkv-connector-tests-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(root, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return root;
    });

    private static readonly Lazy<string> ModelFolder = new(() =>
    {
        string dir = Path.Combine(Root.Value, "vidkv-tiny-random");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), VidKvTinyRecipe.TrainTokenizer(samples: 300));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), VidKvTinyRecipe.TokenizerConfigJson());
        File.WriteAllText(Path.Combine(dir, "preprocessor_config.json"), VidKvTinyRecipe.PreprocessorConfigJson());
        var tokenizer = Qwen2Tokenizer.FromDirectory(dir);
        using var model = LlavaOnevisionModel.Create(VidKvTinyRecipe.ModelConfig(tokenizer), null, seed: 11);
        model.Save(dir);
        return dir;
    });

    private static readonly Lazy<byte[]> SceneMp4 = new(() =>
    {
        var sample = SceneGenerator.Generate(3, new SceneOptions { MinFrames = 24, MaxFrames = 24, Family = QuestionFamily.MotionDirection });
        string path = Path.Combine(Root.Value, "scene.mp4");
        SampleWriter.WriteMp4(sample, path);
        return File.ReadAllBytes(path);
    });

    private static readonly Lazy<byte[]> Png = new(() =>
    {
        using var bitmap = new SKBitmap(new SKImageInfo(120, 80, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        for (int y = 0; y < 80; y++)
        {
            for (int x = 0; x < 120; x++)
            {
                bitmap.SetPixel(x, y, new SKColor((byte)(x * 2), (byte)(y * 3), (byte)((x + y) % 256)));
            }
        }

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100);
        return data.ToArray();
    });

    /// <summary>The checkpoint folder.</summary>
    public static string Folder => ModelFolder.Value;

    /// <summary>A temporary folder for the tests' files.</summary>
    public static string TempFolder => Root.Value;

    /// <summary>A 24-frame synthetic scene, H.264 in MP4 (96x96).</summary>
    public static byte[] VideoBytes => SceneMp4.Value;

    /// <summary>The same video as a file.</summary>
    public static string VideoPath
    {
        get
        {
            _ = SceneMp4.Value;
            return Path.Combine(Root.Value, "scene.mp4");
        }
    }

    /// <summary>A 120x80 PNG.</summary>
    public static byte[] PngBytes => Png.Value;

    /// <summary>Options for a client over the random checkpoint: few frames, few tokens.</summary>
    public static VidKVChatClientOptions Options(Action<VidKVChatClientOptions>? change = null)
    {
        var options = new VidKVChatClientOptions { ModelPath = Folder, FrameCount = 4, MaxOutputTokens = 8 };
        change?.Invoke(options);
        return options;
    }

    /// <summary>A user message with the video and a question.</summary>
    public static ChatMessage VideoQuestion(string question = "What color is the circle?")
        => new(ChatRole.User, [new DataContent(VideoBytes, "video/mp4") { Name = "scene.mp4" }, new TextContent(question)]);

    [ModuleInitializer]
    internal static void LoadNative() => TorchRuntime.EnsureLoaded();
}
