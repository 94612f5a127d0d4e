using VidKV.AI.Backend.Models.LlavaOnevision;
using SkiaSharp;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

public sealed class ImageFilesTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-img-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    /// <summary>Writes uint8 [H, W, 3] as a lossless PNG.</summary>
    internal static void WritePng(Tensor rgb, string path)
    {
        int h = (int)rgb.shape[0], w = (int)rgb.shape[1];
        var rgba = cat(new[] { rgb, full(new long[] { h, w, 1 }, 255, ScalarType.Byte) }, 2).contiguous().data<byte>().ToArray();
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        rgba.CopyTo(bitmap.GetPixelSpan());
        using var data = bitmap.Encode(SKEncodedImageFormat.Png, 100);
        File.WriteAllBytes(path, data.ToArray());
    }

    [Fact]
    public void PngFrames_DecodeToTheSamePixels_AndTheModelGivesTransformersTokens()
    {
        using var scope = NewDisposeScope();
        using var reference = SafetensorsFile.Open(Fixtures.Reference);
        var frames = reference.Read("video.frames");
        var paths = new List<string>();
        for (int i = 0; i < frames.shape[0]; i++)
        {
            paths.Add(Path.Combine(_temp, $"frame{i}.png"));
            WritePng(frames[i], paths[^1]);
        }

        var decoded = ImageFiles.LoadFrames(paths);

        Assert.Equal(frames.shape, decoded.shape);
        Assert.True(decoded.eq(frames).all().item<bool>());

        using var vlm = LlavaOnevisionVideoModel.Load(Fixtures.Model);
        var request = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart("What happens in this video?") }) }) { Videos = new[] { MediaSource.FromPixels(decoded) } };
        var tokens = vlm.Generate(request, new GenerationOptions { MaxNewTokens = 10, StopAtEndOfTurn = false }, KVCacheOptions.FromPreset("fp16")).Select(u => (long)u.TokenId!.Value);
        Assert.Equal(reference.Read("video.greedy_tokens").data<long>().ToArray(), tokens);
    }

    [Fact]
    public void Errors_NameTheFile()
    {
        string missing = Path.Combine(_temp, "missing.png");
        Assert.Contains(missing, Assert.Throws<FileNotFoundException>(() => ImageFiles.Load(missing)).Message, StringComparison.Ordinal);

        string text = Path.Combine(_temp, "notes.png");
        File.WriteAllText(text, "not an image");
        Assert.Contains(text, Assert.Throws<InvalidDataException>(() => ImageFiles.Load(text)).Message, StringComparison.Ordinal);

        using var scope = NewDisposeScope();
        WritePng(zeros(new long[] { 4, 6, 3 }, ScalarType.Byte), Path.Combine(_temp, "a.png"));
        WritePng(zeros(new long[] { 5, 6, 3 }, ScalarType.Byte), Path.Combine(_temp, "b.png"));
        var ex = Assert.Throws<ArgumentException>(() => ImageFiles.LoadFrames(new[] { Path.Combine(_temp, "a.png"), Path.Combine(_temp, "b.png") }));
        Assert.Contains("one size", ex.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => ImageFiles.LoadFrames(Array.Empty<string>()));
    }
}
