using VidKV.AI.Backend.Media;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

/// <summary><see cref="FrameSources"/>: choosing the decoder by content, and every error a user can meet.</summary>
public sealed class FrameSourcesTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-sources-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Open_ChoosesTheDecoderByContentNotExtension()
    {
        // A GIF named .mp4 and an MP4 named .gif still open with the right decoder.
        string gifNamedMp4 = Path.Combine(_temp, "clip.mp4");
        string mp4NamedGif = Path.Combine(_temp, "clip.gif");
        File.Copy(TestClips.Gif, gifNamedMp4);
        File.Copy(TestClips.Mp4, mp4NamedGif);

        using var a = FrameSources.Open(gifNamedMp4);
        using var b = FrameSources.Open(mp4NamedGif);
        using var c = FrameSources.Open(TestClips.WebM);

        Assert.IsType<AnimatedImageFrameSource>(a);
        Assert.Equal("gif", a.Info.Format);
        Assert.IsType<FfmpegFrameSource>(b);
        Assert.Equal("mp4", b.Info.Format);
        Assert.IsType<FfmpegFrameSource>(c);
        Assert.Equal("webm", c.Info.Format);
    }

    [Fact]
    public void Open_StreamAndBytesOfAnImage_DecodeFromMemory()
    {
        using var scope = NewDisposeScope();
        byte[] bytes = File.ReadAllBytes(TestClips.Gif);
        var options = new FrameSamplingOptions { FrameCount = 3 };
        using var path = FrameSources.Open(TestClips.Gif);
        using var stream = new MemoryStream(bytes);
        using var fromStream = FrameSources.Open(stream, "upload.gif");
        using var fromBytes = FrameSources.Open(bytes, "upload.gif");

        var expected = path.Sample(options).ToList();
        foreach (var source in new[] { fromStream, fromBytes })
        {
            Assert.IsType<AnimatedImageFrameSource>(source);
            var frames = source.Sample(options).ToList();
            Assert.Equal(expected.Select(f => f.Timestamp), frames.Select(f => f.Timestamp));
            Assert.All(frames.Zip(expected), p => Assert.True(p.First.Rgb.eq(p.Second.Rgb).all().item<bool>()));
        }
    }

    [Fact]
    public void Open_Folder_IsAnImageSequence()
    {
        using var scope = NewDisposeScope();
        ImageFilesTests.WritePng(zeros(new long[] { 6, 8, 3 }, ScalarType.Byte), Path.Combine(_temp, "f1.png"));
        ImageFilesTests.WritePng(zeros(new long[] { 6, 8, 3 }, ScalarType.Byte), Path.Combine(_temp, "f2.png"));

        using var source = FrameSources.Open(_temp);

        Assert.IsType<ImageSequenceFrameSource>(source);
        Assert.Equal(2, source.Info.FrameCount);
    }

    [Fact]
    public void Open_FfmpegMissing_SaysHowToInstallItAndWhereToPointTo()
    {
        string empty = Directory.CreateDirectory(Path.Combine(_temp, "no-ffmpeg-here")).FullName;
        string copies = Directory.CreateDirectory(Path.Combine(_temp, "copies")).FullName;
        var options = new FfmpegOptions { BinaryFolder = empty, TemporaryFolder = copies };

        var ex = Assert.Throws<FfmpegNotFoundException>(() => FrameSources.Open(TestClips.Mp4, options));
        var bytes = Assert.Throws<FfmpegNotFoundException>(() => FrameSources.Open(File.ReadAllBytes(TestClips.Mp4), "upload.mp4", options));

        Assert.Contains(TestClips.Mp4, ex.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install ffmpeg", ex.Message, StringComparison.Ordinal);
        Assert.Contains("VIDKV_FFMPEG_DIR", ex.Message, StringComparison.Ordinal);
        Assert.Contains(empty, ex.Message, StringComparison.Ordinal);
        Assert.Equal(new[] { empty }, ex.SearchedLocations);
        Assert.Contains("upload.mp4", bytes.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.EnumerateFileSystemEntries(copies)); // no temporary copy left behind

        // Images need no ffmpeg.
        using var gif = FrameSources.Open(TestClips.Gif, options);
        Assert.Equal(20, gif.Info.FrameCount);
    }

    [Fact]
    public void Open_MissingFile_NamesIt()
    {
        string missing = Path.Combine(_temp, "holiday.mp4");

        var ex = Assert.Throws<FileNotFoundException>(() => FrameSources.Open(missing));

        Assert.Contains(missing, ex.Message, StringComparison.Ordinal);
        Assert.Equal(missing, ex.FileName);
    }

    [Fact]
    public void Open_TruncatedMp4WithoutIndex_SaysTruncated()
    {
        var ex = Assert.Throws<InvalidDataException>(() => FrameSources.Open(TestClips.TruncatedMp4));

        Assert.Contains(TestClips.TruncatedMp4, ex.Message, StringComparison.Ordinal);
        Assert.Contains("truncated or corrupt", ex.Message, StringComparison.Ordinal);
        Assert.Contains("moov", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sample_TruncatedMp4WithIndex_FailsWhereTheDataEndsAndWorksBefore()
    {
        using var scope = NewDisposeScope();
        using var source = FrameSources.Open(TestClips.TruncatedFastStart); // the header still promises 4 s

        var ex = Assert.Throws<InvalidDataException>(() => source.Sample(new FrameSamplingOptions { FrameCount = 8 }).ToList());
        var early = source.Sample(new FrameSamplingOptions { FrameCount = 4, End = TimeSpan.FromSeconds(1) }).ToList();

        Assert.Contains(TestClips.TruncatedFastStart, ex.Message, StringComparison.Ordinal);
        Assert.Contains("truncated or corrupt", ex.Message, StringComparison.Ordinal);
        Assert.Equal(4, early.Count);
    }

    [Fact]
    public void Sample_TruncatedWebM_FailsAtTheEndItPromised()
    {
        using var scope = NewDisposeScope();
        using var source = FrameSources.Open(TestClips.TruncatedWebM);

        var ex = Assert.Throws<InvalidDataException>(() => source.Sample(new FrameSamplingOptions { FrameCount = 6 }).ToList());
        var early = source.Sample(new FrameSamplingOptions { FrameCount = 3, End = TimeSpan.FromSeconds(1) }).ToList();

        Assert.Contains(TestClips.TruncatedWebM, ex.Message, StringComparison.Ordinal);
        Assert.Contains("truncated or corrupt", ex.Message, StringComparison.Ordinal);
        Assert.Equal(new long[] { 0, 7, 14 }, early.Select(f => f.SourceIndex));
    }

    [Fact]
    public void Open_AudioOnly_SaysThereIsNoVideoStream()
    {
        var ex = Assert.Throws<InvalidDataException>(() => FrameSources.Open(TestClips.AudioOnly));

        Assert.Contains(TestClips.AudioOnly, ex.Message, StringComparison.Ordinal);
        Assert.Contains("no video stream", ex.Message, StringComparison.Ordinal);
        Assert.Contains("audio (aac)", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_VideoStreamWithoutFrames_SaysZeroFrames()
    {
        var ex = Assert.Throws<InvalidDataException>(() => FrameSources.Open(TestClips.ZeroFrames));

        Assert.Contains(TestClips.ZeroFrames, ex.Message, StringComparison.Ordinal);
        Assert.Contains("no frames", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_EmptyFile_SaysEmpty()
    {
        var path = Assert.Throws<InvalidDataException>(() => FrameSources.Open(TestClips.Empty));
        var bytes = Assert.Throws<InvalidDataException>(() => FrameSources.Open(ReadOnlyMemory<byte>.Empty, "upload.mp4"));
        var stream = Assert.Throws<InvalidDataException>(() => FrameSources.Open(new MemoryStream(), "upload.mp4"));

        Assert.Contains(TestClips.Empty, path.Message, StringComparison.Ordinal);
        Assert.All(new[] { path, bytes, stream }, e => Assert.Contains("empty (0 bytes)", e.Message, StringComparison.Ordinal));
        Assert.Contains("upload.mp4", bytes.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Open_TextNamedMp4_IsNotSupportedAndListsWhatIs()
    {
        var ex = Assert.Throws<NotSupportedException>(() => FrameSources.Open(TestClips.TextAsMp4));

        Assert.Contains(TestClips.TextAsMp4, ex.Message, StringComparison.Ordinal);
        Assert.Contains("matches no supported format", ex.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("5468657365", ex.Message, StringComparison.Ordinal); // "These" in hex: no file bytes in messages
        Assert.DoesNotContain("These", ex.Message, StringComparison.Ordinal);
        foreach (string format in new[] { "MP4", "WebM", "MKV", "MOV", "AVI", "GIF", "PNG", "JPEG", "folder" })
        {
            Assert.Contains(format, ex.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Sample_RangePastTheEndOrBadOptions_IsAnArgumentError()
    {
        using var source = FrameSources.Open(TestClips.Mp4);

        var past = Assert.Throws<ArgumentException>(() => source.Sample(new FrameSamplingOptions { Start = TimeSpan.FromSeconds(30) }));
        var count = Assert.Throws<ArgumentException>(() => source.Sample(new FrameSamplingOptions { FrameCount = 0 }));

        Assert.Contains("Start", past.Message, StringComparison.Ordinal);
        Assert.Contains("1 to 1024", count.Message, StringComparison.Ordinal);
    }
}
