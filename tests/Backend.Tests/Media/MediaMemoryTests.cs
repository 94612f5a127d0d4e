using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

/// <summary>Tests that read the process's memory or child processes: they run alone, with no other test beside them.</summary>
[CollectionDefinition(nameof(ProcessWideMeasurements), DisableParallelization = true)]
public sealed class ProcessWideMeasurements;

/// <summary>
/// Media limits through a loaded model (<see cref="ChatRequest.Limits"/>), memory that stays flat while crafted media are
/// refused, one copy of the encoded bytes, and probing that stops at the deadline or on cancellation with no process left.
/// </summary>
[Collection(nameof(ProcessWideMeasurements))]
public sealed class MediaMemoryTests : IDisposable
{
    private static readonly Lazy<LlavaOnevisionVideoModel> Model = new(() => (LlavaOnevisionVideoModel)VideoLanguageModel.Load(Fixtures.Model));
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-memory-").FullName;
    private readonly ITestOutputHelper _output;

    public MediaMemoryTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Png_Declaring60000x60000_ThroughTheModel_IsAClearErrorAndMemoryStaysFlat()
    {
        var png = CraftedMedia.Png(60000, 60000);
        string path = Path.Combine(_temp, "bomb.png");
        File.WriteAllBytes(path, png);
        var model = Model.Value;
        Ask(model, ImageRequest(MediaSource.FromBytes(CraftedMedia.Png(8, 8, 120), "small.png"))); // warm up: everything a request loads
        GC.Collect();
        GC.WaitForPendingFinalizers();
        bool reset = CraftedMedia.ResetPeakMemory();
        var (before, peakBefore) = CraftedMedia.ResidentMemory();

        for (int i = 0; i < 10; i++)
        {
            var bytes = Assert.Throws<MediaLimitExceededException>(() => Ask(model, ImageRequest(MediaSource.FromBytes(png, "upload.png"))));
            var file = Assert.Throws<MediaLimitExceededException>(() => Ask(model, ImageRequest(MediaSource.FromFile(path))));
            Assert.Equal(nameof(MediaLimits.MaxWidth), bytes.Limit);
            Assert.Contains("'upload.png' declares frames 60,000x60,000 pixels", bytes.Message, StringComparison.Ordinal);
            Assert.Contains($"'{path}' declares frames 60,000x60,000 pixels", file.Message, StringComparison.Ordinal);
        }

        var (after, peak) = CraftedMedia.ResidentMemory();
        _output.WriteLine($"20 refusals: resident {before >> 20} -> {after >> 20} MiB, peak {(reset ? before : peakBefore) >> 20} -> {peak >> 20} MiB (peak reset: {reset})");

        // Decoding would need 14.4 GB (60000 x 60000 x 4); a generous 128 MiB bound still tells the two apart.
        Assert.True(peak - (reset ? before : peakBefore) < 128L << 20, $"peak resident memory rose by {(peak - before) >> 20} MiB (reset: {reset})");
        Assert.True(after - before < 128L << 20, $"resident memory rose by {(after - before) >> 20} MiB");
    }

    [Fact]
    public void Clip_8192x8192_ThroughTheModel_IsRefusedBeforeDecoding()
    {
        var request = VideoRequest(MediaSource.FromFile(TestClips.Huge8192));

        var ex = Assert.Throws<MediaLimitExceededException>(() => Ask(Model.Value, request));

        Assert.Equal(nameof(MediaLimits.MaxWidth), ex.Limit);
        Assert.Contains("8,192x8,192", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ffmpeg", CraftedMedia.ChildProcesses());

        // Limits are the request's: with the size caps raised, the next limit to hold is the pixel budget, still before decoding.
        var raised = request with { Limits = new MediaLimits { MaxWidth = 8192, MaxHeight = 8192, MaxDecodedPixels = 100_000_000 } };
        var budget = Assert.Throws<MediaLimitExceededException>(() => Ask(Model.Value, raised));
        Assert.Equal(nameof(MediaLimits.MaxDecodedPixels), budget.Limit);
        Assert.Contains("2 decoded frames of 8,192x8,192 pixels", budget.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PixelBudget_IsOneForTheWholeRequest()
    {
        // Each 100x100 image is 10,000 pixels: two fit in 20,000, three do not, and the third is refused before it is decoded.
        var image = MediaSource.FromBytes(CraftedMedia.Png(100, 100, 200), "square.png");
        var limits = new MediaLimits { MaxDecodedPixels = 20_000 };
        var two = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new ImagePart(), new ImagePart(), new TextPart("?") }) })
        {
            Images = new[] { image, image },
            Limits = limits,
        };
        var three = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new ImagePart(), new ImagePart(), new ImagePart(), new TextPart("?") }) })
        {
            Images = new[] { image, image, image },
            Limits = limits,
        };

        Assert.NotEmpty(Ask(Model.Value, two));
        var ex = Assert.Throws<MediaLimitExceededException>(() => Ask(Model.Value, three));

        Assert.Equal(nameof(MediaLimits.MaxDecodedPixels), ex.Limit);
        Assert.Contains("allowed: 0 more for this request, of 20,000", ex.Message, StringComparison.Ordinal);
        Assert.Contains("MaxWidth is 0", Assert.Throws<ArgumentException>(() => Ask(Model.Value, two with { Limits = new MediaLimits { MaxWidth = 0 } })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gif_ReadByPath_IsHeldOnce_AndBytesAreNotCopied()
    {
        // A GIF made large by a 192 MiB comment: reading it into managed memory and copying it for SkiaSharp (as before)
        // held it twice or three times; it is now read once into native memory, and bytes given in memory are decoded in place.
        const long Padding = 192L << 20;
        string big = Path.Combine(_temp, "big.gif");
        CraftedMedia.WriteGifWithComment(TestClips.Gif, big, Padding);
        long size = new FileInfo(big).Length;
        var options = new FrameSamplingOptions { FrameCount = 4 };
        GC.Collect();
        bool reset = CraftedMedia.ResetPeakMemory();
        var (before, peakBefore) = CraftedMedia.ResidentMemory();

        using (var source = FrameSources.Open(big))
        using (var video = VideoFrames.Load(source, options))
        {
            Assert.Equal(4, video.Frames.shape[0]);
        }

        var (_, peak) = CraftedMedia.ResidentMemory();
        long rise = peak - (reset ? before : peakBefore);
        _output.WriteLine($"{size >> 20} MiB GIF by path: peak rose {rise >> 20} MiB (peak reset: {reset})");
        Assert.True(rise < size * 3 / 2, $"reading a {size >> 20} MiB GIF by path raised peak memory by {rise >> 20} MiB (reset: {reset}); one copy is expected");
        Assert.True(rise > size / 2, $"the GIF is held once while it is decoded (peak rose {rise >> 20} MiB)");

        var bytes = File.ReadAllBytes(big);
        GC.Collect();
        reset = CraftedMedia.ResetPeakMemory();
        (before, peakBefore) = CraftedMedia.ResidentMemory();
        using (var source = FrameSources.Open(bytes, "big.gif"))
        using (var video = VideoFrames.Load(source, options))
        {
            Assert.Equal(4, video.Frames.shape[0]);
        }

        (_, peak) = CraftedMedia.ResidentMemory();
        rise = peak - (reset ? before : peakBefore);
        _output.WriteLine($"{size >> 20} MiB GIF as bytes: peak rose {rise >> 20} MiB (peak reset: {reset})");
        Assert.True(rise < size / 2, $"decoding a {size >> 20} MiB GIF held in memory raised peak memory by {rise >> 20} MiB (reset: {reset}); no copy is expected");
        GC.KeepAlive(bytes);
    }

    [Fact]
    public void DecodeTimeout_KillsProbing_AndLeavesNoProcess()
    {
        var limits = new MediaLimits { DecodeTimeout = TimeSpan.FromMilliseconds(1) };

        var video = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(TestClips.Mkv, limits: limits));
        var uploaded = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(File.ReadAllBytes(TestClips.Mkv), "clip.mkv", limits: limits));
        var request = VideoRequest(MediaSource.FromFile(TestClips.Mkv)) with { Limits = limits };
        var model = Assert.Throws<MediaLimitExceededException>(() => Ask(Model.Value, request));

        Assert.All(new[] { video, uploaded, model }, e => Assert.Equal(nameof(MediaLimits.DecodeTimeout), e.Limit));
        Assert.Contains("within 0.001 s", video.Message, StringComparison.Ordinal);
        Assert.Contains("'clip.mkv'", uploaded.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.GetTempPath(), uploaded.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("ffprobe", CraftedMedia.ChildProcesses());
        Assert.DoesNotContain("ffmpeg", CraftedMedia.ChildProcesses());
    }

    [Fact]
    public void CallerCancellation_StopsWithTheCallersToken_AndStartsNoProcess()
    {
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();

        var ex = Assert.ThrowsAny<OperationCanceledException>(() => FrameSources.Open(TestClips.Mp4, cancellationToken: cancelled.Token));

        Assert.Equal(cancelled.Token, ex.CancellationToken);
        Assert.DoesNotContain("ffprobe", CraftedMedia.ChildProcesses());
    }

    private static ChatRequest ImageRequest(MediaSource image)
        => new(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new ImagePart(), new TextPart("What is shown?") }) }) { Images = new[] { image } };

    private static ChatRequest VideoRequest(MediaSource video)
        => new(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart("What moves?") }) }) { Videos = new[] { video } };

    private static List<GenerationUpdate> Ask(IVideoLanguageModel model, ChatRequest request)
        => model.Generate(request, new GenerationOptions { MaxNewTokens = 2, StopAtEndOfTurn = false }, KVCacheOptions.FromPreset("fp16")).ToList();
}
