using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

public sealed class VideoFramesTests
{
    [Fact]
    public void Mp4_ToTheModel_EndToEnd_ProducesTokens()
    {
        using var scope = NewDisposeScope();
        using var vlm = LlavaOnevisionVideoModel.Load(Fixtures.Model);
        using var source = FrameSources.Open(TestClips.Mp4);
        var options = new FrameSamplingOptions { FrameCount = 4 };

        using var raw = VideoFrames.Load(source, options);
        using var preprocessed = VideoFrames.LoadForModel(source, options, vlm.VideoPreprocessor);

        Assert.Equal(new long[] { 4, 240, 320, 3 }, raw.Frames.shape);
        Assert.Equal(new long[] { 4, 3, 70, 70 }, preprocessed.PixelValues.shape);
        Assert.Equal(ScalarType.Float32, preprocessed.PixelValues.dtype);
        Assert.Equal(new long[] { 0, 33, 66, 99 }, raw.SourceIndices);
        Assert.Equal(raw.Timestamps, preprocessed.Timestamps);
        Assert.Equal(new[] { 0, 1.32, 2.64, 3.96 }, raw.Timestamps.Select(t => Math.Round(t.TotalSeconds, 3)));
        // Frame by frame as they arrive = the whole clip at once.
        double diff = (vlm.VideoPreprocessor.Preprocess(raw.Frames) - preprocessed.PixelValues).abs().max().item<float>();
        Assert.True(diff < 1e-6, $"max |diff| {diff}");

        var request = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart("What happens in this video?") }) });
        var generation = new GenerationOptions { MaxNewTokens = 5, StopAtEndOfTurn = false };
        var fromRaw = vlm.Generate(request with { Videos = new[] { MediaSource.FromPixels(raw.Frames) } }, generation, KVCacheOptions.FromPreset("vidkv-1.5/1.58")).ToList();
        var fromPreprocessed = vlm.Generate(request with { Videos = new[] { MediaSource.FromPixels(preprocessed.PixelValues) } }, generation, KVCacheOptions.FromPreset("vidkv-1.5/1.58")).ToList();

        Assert.Equal(5, fromRaw.Count(u => u.TokenId is not null));
        Assert.Equal(4 * 9 + 1, fromRaw[^1].Usage!.VideoTokens);
        Assert.Equal(fromRaw.Select(u => u.TokenId), fromPreprocessed.Select(u => u.TokenId));
    }
}
