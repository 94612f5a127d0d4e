using VidKV.AI.Backend.Media;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

/// <summary>
/// <see cref="MediaLimits"/> hold before memory is spent: declared sizes and frame counts are read from headers and refused
/// before decoding; bytes are counted before they are read; the pixel budget is charged before frames are decoded; probing
/// and decoding stop at the deadline or on cancellation.
/// </summary>
public sealed class MediaLimitsTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-limits-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Png_Declaring60000x60000_IsRefusedFromItsHeader_AsBytesPathStreamAndImage()
    {
        var png = CraftedMedia.Png(60000, 60000);
        Assert.Equal(254, png.Length);
        string path = Path.Combine(_temp, "bomb.png");
        File.WriteAllBytes(path, png);

        var errors = new Exception[]
        {
            Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(png, "upload.png")),
            Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(new MemoryStream(png), "upload.png")),
            Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(path)),
            Assert.Throws<MediaLimitExceededException>(() => ImageFiles.Load(path)),
            Assert.Throws<MediaLimitExceededException>(() => ImageFiles.Decode(new MemoryStream(png), "upload.png")),
        };

        foreach (MediaLimitExceededException ex in errors)
        {
            Assert.Equal(nameof(MediaLimits.MaxWidth), ex.Limit);
            Assert.Contains("60,000x60,000", ex.Message, StringComparison.Ordinal);
            Assert.Contains("at most 7,680 wide (MediaLimits.MaxWidth)", ex.Message, StringComparison.Ordinal);
            Assert.DoesNotContain("allocate", ex.Message, StringComparison.Ordinal);
        }

        Assert.Contains("'upload.png'", errors[0].Message, StringComparison.Ordinal);
        Assert.Contains($"'{path}'", errors[2].Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Png_TallerThanAllowed_NamesMaxHeight()
    {
        var ex = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(CraftedMedia.Png(100, 9000), "tall.png"));

        Assert.Equal(nameof(MediaLimits.MaxHeight), ex.Limit);
        Assert.Contains("at most 7,680 high", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RaisedSizeLimits_LetTheSameHeaderThrough_ToTheDecoder()
    {
        // The limit, not the format, refused the bomb: with caps that allow its size, the 1-pixel-high image decodes.
        var png = CraftedMedia.Png(9000, 1, 200);
        Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(png, "wide.png"));

        using var source = FrameSources.Open(png, "wide.png", limits: new MediaLimits { MaxWidth = 9000 });
        var frame = Assert.Single(source.Sample(new FrameSamplingOptions()));
        using var pixels = frame.Rgb;
        Assert.Equal(new long[] { 1, 9000, 3 }, pixels.shape);
    }

    [Fact]
    public void Gif_Declaring60000x60000_IsRefusedFromItsHeader()
    {
        var ex = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(CraftedMedia.Gif(60000, 60000), "bomb.gif"));

        Assert.Equal(nameof(MediaLimits.MaxWidth), ex.Limit);
        Assert.Contains("'bomb.gif'", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AnimationsAndFolders_WithMoreFramesThanAllowed_AreRefusedBeforeDecoding()
    {
        var limits = new MediaLimits { MaxFrames = 10 };
        string folder = Path.Combine(_temp, "frames");
        Directory.CreateDirectory(folder);
        var still = CraftedMedia.Png(4, 4, 120);
        for (int i = 0; i < 11; i++)
        {
            File.WriteAllBytes(Path.Combine(folder, $"frame{i}.png"), still);
        }

        var gif = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(TestClips.Gif, limits: limits));
        var webp = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(File.ReadAllBytes(TestClips.AnimatedWebP), "anim.webp", limits: limits));
        var frames = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(folder, limits: limits));
        var video = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(TestClips.Mp4, limits: limits));

        Assert.All(new[] { gif, webp, frames, video }, e => Assert.Equal(nameof(MediaLimits.MaxFrames), e.Limit));
        Assert.Contains("declares 20 frames; allowed: at most 10", gif.Message, StringComparison.Ordinal);
        Assert.Contains("declares 20 frames", webp.Message, StringComparison.Ordinal);
        Assert.Contains("declares 11 frames", frames.Message, StringComparison.Ordinal);
        Assert.Contains("declares 100 frames", video.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Clip_8192x8192_IsRefusedByItsDeclaredSize_WhenOpened()
    {
        // Opening only probes: the refusal comes from ffprobe's description, before any frame is decoded.
        var ex = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(TestClips.Huge8192));
        var bytes = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(File.ReadAllBytes(TestClips.Huge8192), "huge.mp4"));

        Assert.Equal(nameof(MediaLimits.MaxWidth), ex.Limit);
        Assert.Contains("8,192x8,192", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Nothing was decoded", ex.Message, StringComparison.Ordinal);
        Assert.Contains("'huge.mp4'", bytes.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("vidkv-media-", bytes.Message, StringComparison.Ordinal); // the temporary copy is not named
    }

    [Fact]
    public void PixelBudget_IsChargedBeforeAnyFrameIsDecoded()
    {
        // 32 frames of 320x240 are 2,457,600 pixels.
        var limits = new MediaLimits { MaxDecodedPixels = 1_000_000 };
        using var video = (FfmpegFrameSource)FrameSources.Open(TestClips.Mp4, limits: limits);
        var before = video.Statistics;

        var ex = Assert.Throws<MediaLimitExceededException>(() => video.Sample(new FrameSamplingOptions { FrameCount = 32 }));

        Assert.Equal(nameof(MediaLimits.MaxDecodedPixels), ex.Limit);
        Assert.Contains("32 decoded frames of 320x240", ex.Message, StringComparison.Ordinal);
        Assert.Equal(before, video.Statistics); // no ffmpeg started
        using (var few = VideoFrames.Load(video, new FrameSamplingOptions { FrameCount = 8 }))
        {
            Assert.Equal(8, few.Frames.shape[0]); // 614,400 pixels fit
        }

        // An animation is charged for every frame it composites on the way to the sampled ones.
        using var gif = FrameSources.Open(TestClips.Gif, limits: new MediaLimits { MaxDecodedPixels = 96 * 72 * 10 });
        var late = Assert.Throws<MediaLimitExceededException>(() => gif.Sample(new FrameSamplingOptions { FrameCount = 2 }));
        Assert.Equal(nameof(MediaLimits.MaxDecodedPixels), late.Limit);
    }

    [Fact]
    public void MaxBytes_HoldsForPathsBytesAndStreams()
    {
        var limits = new MediaLimits { MaxBytes = 1000 };
        long size = new FileInfo(TestClips.Gif).Length;
        Assert.True(size > 1000);
        string link = Path.Combine(_temp, "link.gif");
        File.CreateSymbolicLink(link, TestClips.Gif);

        var path = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(TestClips.Gif, limits: limits));
        var linked = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(link, limits: limits));
        var video = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(TestClips.Mp4, limits: limits));
        var image = Assert.Throws<MediaLimitExceededException>(() => ImageFiles.Load(TestClips.Gif, limits));
        var bytes = Assert.Throws<MediaLimitExceededException>(() => FrameSources.Open(File.ReadAllBytes(TestClips.Gif), "up.gif", limits: limits));
        string copies = Path.Combine(_temp, "copies");
        Directory.CreateDirectory(copies);
        var stream = Assert.Throws<MediaLimitExceededException>(
            () => FrameSources.Open(new NonSeekableStream(File.ReadAllBytes(TestClips.Mp4)), "up.mp4", new FfmpegOptions { TemporaryFolder = copies }, limits));

        Assert.All(new[] { path, linked, video, image, bytes, stream }, e => Assert.Equal(nameof(MediaLimits.MaxBytes), e.Limit));
        Assert.Contains($"is {size:N0} bytes; allowed: at most 1,000 (MediaLimits.MaxBytes)", linked.Message, StringComparison.Ordinal); // the target's size, not the link's
        Assert.Contains("is more than 1,000 bytes", stream.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFiles(copies)); // the partial copy is deleted
    }

    [Fact]
    public async Task NamedPipe_AsMedia_IsRefusedWithoutBlocking()
    {
        string pipe = Path.Combine(_temp, "pipe.mp4");
        CraftedMedia.Fifo(pipe);

        // Nobody ever writes to the pipe: opening it for reading would block forever. The wait only guards the test run.
        var ex = await Task.Run(() => Assert.Throws<InvalidDataException>(() => FrameSources.Open(pipe))).WaitAsync(TimeSpan.FromSeconds(60));
        var image = await Task.Run(() => Assert.Throws<InvalidDataException>(() => ImageFiles.Load(pipe))).WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Contains("is a named pipe; only regular files are read", ex.Message, StringComparison.Ordinal);
        Assert.Contains("named pipe", image.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void DamagedVideo_MessageHasNoTemporaryPathOrHeapAddress()
    {
        var ex = Assert.Throws<InvalidDataException>(() => FrameSources.Open(File.ReadAllBytes(TestClips.TruncatedMp4), "cut.mp4"));

        Assert.Contains("'cut.mp4'", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("vidkv-media-", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(Path.GetTempPath(), ex.Message, StringComparison.Ordinal);
        Assert.DoesNotMatch(@"0x[0-9a-fA-F]{4,}", ex.Message);
    }

    [Fact]
    public void FfmpegMessages_DropAddressesAndPaths()
    {
        Assert.Equal("[h264] error while decoding MB 3 4", FfmpegMessages.Clean("[h264 @ 0x55d5c3a0b2c0] [error] error while decoding MB 3 4", "/tmp/x.mp4", "clip.mp4"));
        Assert.Equal("[mov,mp4,m4a,3gp,3g2,mj2] moov atom not found / clip.mp4: Invalid data found when processing input",
            FfmpegMessages.Clean("[mov,mp4,m4a,3gp,3g2,mj2 @ 0x5581d4c0] moov atom not found / /tmp/vidkv-media-1.mp4: Invalid data found when processing input", "/tmp/vidkv-media-1.mp4", "clip.mp4"));
    }

    [Fact]
    public async Task FramesPerSecondSampling_OfAHugeDeclaredDuration_EndsAtTheLastFrame()
    {
        // Ten frames that claim to last 30,000 years: sampling at 240 fps would otherwise step through 2e14 instants.
        var indices = await Task.Run(() => FrameIndexSampler.Select(10, i => i / 10.0, 1e12, new FrameSamplingOptions { FramesPerSecond = 240 }, "long.mp4"))
            .WaitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)i), indices);
    }

    [Fact]
    public void Validate_NamesTheWrongValue()
    {
        Assert.Contains("MaxWidth is 0", Assert.Throws<ArgumentException>(() => new MediaLimits { MaxWidth = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MaxHeight is -1", Assert.Throws<ArgumentException>(() => new MediaLimits { MaxHeight = -1 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MaxFrames is 0", Assert.Throws<ArgumentException>(() => new MediaLimits { MaxFrames = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MaxDecodedPixels is 0", Assert.Throws<ArgumentException>(() => new MediaLimits { MaxDecodedPixels = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("MaxBytes is 0", Assert.Throws<ArgumentException>(() => new MediaLimits { MaxBytes = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("DecodeTimeout is", Assert.Throws<ArgumentException>(() => new MediaLimits { DecodeTimeout = TimeSpan.Zero }.Validate()).Message, StringComparison.Ordinal);
        new MediaLimits { DecodeTimeout = Timeout.InfiniteTimeSpan }.Validate();
        Assert.Throws<ArgumentException>(() => FrameSources.Open(TestClips.Gif, limits: new MediaLimits { MaxBytes = -5 }));
    }

    /// <summary>A stream that cannot seek or tell its length, as a network body.</summary>
    private sealed class NonSeekableStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }
    }
}
