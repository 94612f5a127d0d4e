using VidKV.AI.Backend.Media;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

public sealed class FfmpegFrameSourceTests
{
    private readonly ITestOutputHelper _output;

    public FfmpegFrameSourceTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<string, string, string, int, int, double, long> Containers => new()
    {
        { nameof(TestClips.Mp4), "mp4", "h264", 320, 240, 25, 100 },
        { nameof(TestClips.WebM), "webm", "vp9", 160, 120, 15, 51 },
        { nameof(TestClips.Mkv), "mkv", "h264", 256, 144, 30, 90 },
        { nameof(TestClips.Mov), "mov", "mpeg4", 176, 144, 12, 60 },
        { nameof(TestClips.Avi), "avi", "mjpeg", 200, 150, 10, 30 },
        { nameof(TestClips.Ntsc), "mp4", "h264", 192, 108, 30000 / 1001.0, 60 },
        { nameof(TestClips.Ts), "mpegts", "h264", 160, 90, 24, 48 },
        { nameof(TestClips.WebMWithAudio), "webm", "vp8", 144, 108, 20, 40 },
    };

    /// <summary>Mean absolute difference in uint8 levels between two rgb24 images.</summary>
    internal static double MeanAbsDiff(Tensor frame, byte[] reference)
    {
        using var scope = NewDisposeScope();
        var expected = tensor(reference, ScalarType.Byte).reshape(frame.shape);
        return (frame.to(ScalarType.Float32) - expected.to(ScalarType.Float32)).abs().mean().item<float>();
    }

    private static string Clip(string name) => (string)typeof(TestClips).GetProperty(name)!.GetValue(null)!;

    [Theory]
    [MemberData(nameof(Containers))]
    public void Sample_Uniform_GivesLinspaceFramesAtTheirTimesAsFfmpegDecodesThem(string clip, string format, string codec, int width, int height, double fps, long frames)
    {
        using var scope = NewDisposeScope();
        string path = Clip(clip);
        using var source = FfmpegFrameSource.Open(path);

        var sampled = source.Sample(new FrameSamplingOptions { FrameCount = 6 }).ToList();

        var info = source.Info;
        Assert.Equal((path, format, codec, width, height, frames, 0), (info.Source, info.Format, info.Codec, info.Width, info.Height, info.FrameCount, info.Rotation));
        Assert.Equal(fps, info.FrameRate, 6);
        Assert.Equal(frames / fps, info.Duration.TotalSeconds, 1);
        var expected = FrameIndexSampler.Linspace(0, frames - 1, 6);
        Assert.Equal(expected, sampled.Select(f => f.SourceIndex));
        for (int i = 0; i < sampled.Count; i++)
        {
            var frame = sampled[i];
            Assert.Equal(new long[] { height, width, 3 }, frame.Rgb.shape);
            Assert.Equal(ScalarType.Byte, frame.Rgb.dtype);
            Assert.Equal(expected[i] / fps, frame.Timestamp.TotalSeconds, 3);
            double diff = MeanAbsDiff(frame.Rgb, TestClips.ExtractFrame(path, expected[i]));
            _output.WriteLine($"{clip} frame {expected[i]} at {frame.Timestamp.TotalSeconds:F3} s: mean |diff| vs ffmpeg select = {diff:F3}");
            Assert.True(diff < 3, $"frame {expected[i]}: mean |diff| {diff} vs ffmpeg's own extraction");
        }

        // The test pattern moves: consecutive samples differ.
        for (int i = 1; i < sampled.Count; i++)
        {
            double change = (sampled[i].Rgb.to(ScalarType.Float32) - sampled[i - 1].Rgb.to(ScalarType.Float32)).abs().mean().item<float>();
            Assert.True(change > 5, $"frames {expected[i - 1]} and {expected[i]} are nearly equal ({change})");
        }
    }

    [Fact]
    public void Sample_FramesPerSecondWithMaximumAndRange_HonoursAll()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.Mp4); // 100 frames at 25 fps

        var twoPerSecond = source.Sample(new FrameSamplingOptions { FramesPerSecond = 2 }).ToList();
        var capped = source.Sample(new FrameSamplingOptions { FramesPerSecond = 10, MaxFrames = 5 }).ToList();
        var ranged = source.Sample(new FrameSamplingOptions { FrameCount = 4, Start = TimeSpan.FromSeconds(1), End = TimeSpan.FromSeconds(2) }).ToList();

        Assert.Equal(new long[] { 0, 12, 25, 37, 50, 62, 75, 87 }, twoPerSecond.Select(f => f.SourceIndex));
        Assert.Equal(new[] { 0, 0.48, 1, 1.48, 2, 2.48, 3, 3.48 }, twoPerSecond.Select(f => Math.Round(f.Timestamp.TotalSeconds, 3)));
        Assert.Equal(new long[] { 0, 24, 49, 74, 99 }, capped.Select(f => f.SourceIndex));
        Assert.Equal(new long[] { 25, 33, 41, 49 }, ranged.Select(f => f.SourceIndex));
        Assert.All(ranged, f => Assert.InRange(f.Timestamp.TotalSeconds, 1, 2 - 0.001));
    }

    [Fact]
    public void Sample_VideoShorterThanAskedFor_ReturnsEachFrameOnce()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.Short); // 5 frames

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 32 }).ToList();

        Assert.Equal(5, source.Info.FrameCount);
        Assert.Equal(new long[] { 0, 1, 2, 3, 4 }, frames.Select(f => f.SourceIndex));
        Assert.Equal(new[] { 0, 0.2, 0.4, 0.6, 0.8 }, frames.Select(f => Math.Round(f.Timestamp.TotalSeconds, 3)));
    }

    [Fact]
    public void Sample_FramesFarApart_SeeksOncePerFrame()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.ShortGop); // keyframe every second, 20 s
        int probes = source.Statistics.Processes;

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 5 }).ToList();

        _output.WriteLine($"keyframe interval {source.KeyframeInterval.TotalSeconds:F2} s, {source.Statistics.Processes - probes} ffmpeg runs for 5 frames");
        Assert.InRange(source.KeyframeInterval.TotalSeconds, 0.9, 1.1);
        Assert.Equal(5, source.Statistics.Processes - probes);
        Assert.Equal(FrameIndexSampler.Linspace(0, 199, 5), frames.Select(f => f.SourceIndex));
        foreach (var frame in frames)
        {
            Assert.True(MeanAbsDiff(frame.Rgb, TestClips.ExtractFrame(TestClips.ShortGop, frame.SourceIndex)) < 3);
        }
    }

    [Fact]
    public void Sample_SingleKeyframe_DecodesInOnePass()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.SingleKeyframe);
        int probes = source.Statistics.Processes;

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 5 }).ToList();

        _output.WriteLine($"keyframe interval {source.KeyframeInterval.TotalSeconds:F2} s");
        Assert.True(source.KeyframeInterval.TotalSeconds >= 19);
        Assert.Equal(1, source.Statistics.Processes - probes);
        Assert.Equal(FrameIndexSampler.Linspace(0, 199, 5), frames.Select(f => f.SourceIndex));
        Assert.True(MeanAbsDiff(frames[3].Rgb, TestClips.ExtractFrame(TestClips.SingleKeyframe, frames[3].SourceIndex)) < 3);
    }

    [Fact]
    public void Sample_RotatedVideo_ReturnsUprightFramesAsPlayersShowThem()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.Rotated);

        var frame = source.Sample(new FrameSamplingOptions { FrameCount = 3 }).ElementAt(1);

        Assert.Equal((240, 320, 270), (source.Info.Width, source.Info.Height, source.Info.Rotation));
        Assert.Equal(new long[] { 320, 240, 3 }, frame.Rgb.shape);
        // ffmpeg's own extraction rotates automatically, as players do.
        Assert.True(MeanAbsDiff(frame.Rgb, TestClips.ExtractFrame(TestClips.Rotated, frame.SourceIndex)) < 3);
    }

    [Theory]
    [InlineData(nameof(TestClips.VariableRateMp4), 80, 80, true)] // MP4 counts its frames: 80 in about 10 s
    [InlineData(nameof(TestClips.VariableRateMkv), 190, 200, false)] // Matroska does not: about 10 s at the 20 fps it guesses
    public void Sample_VariableFrameRate_SamplesUniformlyInTimeAndReturnsEachFramesOwnTime(string clip, long minFrames, long maxFrames, bool detected)
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(Clip(clip)); // 40 frames in the first 2 s, 40 in the next 8 s (about 5 fps)

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 5 }).ToList();

        double fps = source.Info.FrameRate;
        double[] actual = TestClips.FrameTimes(Clip(clip));
        _output.WriteLine($"{clip}: {source.Info.FrameCount} frames, avg {fps:F3} fps, VFR {source.Info.IsVariableFrameRate}: " + string.Join(", ", frames.Select(f => $"#{f.SourceIndex}@{f.Timestamp.TotalSeconds:F3}")));
        Assert.InRange(source.Info.FrameCount, minFrames, maxFrames);
        Assert.Equal(detected, source.Info.IsVariableFrameRate);
        Assert.InRange(source.Info.Duration.TotalSeconds, 9.8, 10.0); // the last frame's duration is the muxer's guess
        Assert.Equal(5, frames.Count);
        foreach (var frame in frames)
        {
            // The frame's own time: the first frame shown at or after its target (less half a frame).
            double t = frame.Timestamp.TotalSeconds;
            double from = (frame.SourceIndex / fps) - (0.5 / fps);
            Assert.Equal(actual.First(a => a >= from - 1e-6), t, 3);
        }

        Assert.Equal(9.8, frames[^1].Timestamp.TotalSeconds, 3); // the last frame
    }

    [Fact]
    public void Open_LiveRecordingWithoutDuration_CountsTheFramesAndSamples()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.LiveWebM); // 30 frames at 12 fps, no duration in the file

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 4 }).ToList();

        Assert.Equal(30, source.Info.FrameCount);
        Assert.Equal(12, source.Info.FrameRate, 3);
        Assert.Equal(FrameIndexSampler.Linspace(0, 29, 4), frames.Select(f => f.SourceIndex));
        Assert.Equal(new[] { 0, 0.75, 1.583, 2.417 }, frames.Select(f => Math.Round(f.Timestamp.TotalSeconds, 3)));
        Assert.True(MeanAbsDiff(frames[2].Rgb, TestClips.ExtractFrame(TestClips.LiveWebM, frames[2].SourceIndex)) < 3);
    }

    [Fact]
    public void Open_StreamAndBytes_GiveTheSameFramesAsThePath_AndTheCopyIsDeletedOnDispose()
    {
        using var scope = NewDisposeScope();
        var options = new FrameSamplingOptions { FrameCount = 4 };
        using var fromPath = FfmpegFrameSource.Open(TestClips.WebM);
        var expected = fromPath.Sample(options).ToList();
        byte[] bytes = File.ReadAllBytes(TestClips.WebM);
        string copies = Directory.CreateTempSubdirectory("vidkv-copies-").FullName;
        try
        {
            var ffmpeg = new FfmpegOptions { TemporaryFolder = copies };
            string copyOfStream, copyOfBytes;
            using (var stream = new MemoryStream(bytes))
            using (var fromStream = FfmpegFrameSource.Open(stream, "upload.webm", ffmpeg))
            {
                copyOfStream = fromStream.FilePath;
                Assert.True(File.Exists(copyOfStream));
                Assert.StartsWith(copies, copyOfStream, StringComparison.Ordinal);
                Assert.Equal("upload.webm", fromStream.Info.Source);
                AssertSameFrames(expected, fromStream.Sample(options).ToList());
            }

            using (var fromBytes = FfmpegFrameSource.Open(bytes, "upload.webm", ffmpeg))
            {
                copyOfBytes = fromBytes.FilePath;
                AssertSameFrames(expected, fromBytes.Sample(options).ToList());
            }

            Assert.False(File.Exists(copyOfStream));
            Assert.False(File.Exists(copyOfBytes));
            Assert.Empty(Directory.EnumerateFileSystemEntries(copies));
        }
        finally
        {
            Directory.Delete(copies, recursive: true);
        }
    }

    [Fact]
    public void Sample_AfterDispose_ThrowsObjectDisposed()
    {
        using var scope = NewDisposeScope();
        var source = FfmpegFrameSource.Open(File.ReadAllBytes(TestClips.ShortGop), "upload.mp4"); // five separate runs
        using var frames = source.Sample(new FrameSamplingOptions { FrameCount = 5 }).GetEnumerator();
        Assert.True(frames.MoveNext());

        source.Dispose();

        Assert.False(File.Exists(source.FilePath));
        Assert.Throws<ObjectDisposedException>(() => frames.MoveNext());
        Assert.Throws<ObjectDisposedException>(() => source.Sample(new FrameSamplingOptions()));
    }

    [Fact]
    public void Open_TextDirectly_IsNotSupported()
    {
        var ex = Assert.Throws<NotSupportedException>(() => FfmpegFrameSource.Open(TestClips.TextAsMp4));

        Assert.Contains(TestClips.TextAsMp4, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Sample_CancelledBetweenFrames_StopsWithOperationCanceled()
    {
        using var scope = NewDisposeScope();
        using var source = FfmpegFrameSource.Open(TestClips.Mkv);
        using var cts = new CancellationTokenSource();
        var seen = new List<long>();

        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var frame in source.Sample(new FrameSamplingOptions { FrameCount = 8 }, cts.Token))
            {
                seen.Add(frame.SourceIndex);
                cts.Cancel();
            }
        });

        Assert.Single(seen);
        // The source still works afterwards.
        Assert.Equal(2, source.Sample(new FrameSamplingOptions { FrameCount = 2 }).Count());
    }

    private static void AssertSameFrames(IReadOnlyList<SampledFrame> expected, IReadOnlyList<SampledFrame> actual)
    {
        Assert.Equal(expected.Select(f => (f.SourceIndex, f.Timestamp)), actual.Select(f => (f.SourceIndex, f.Timestamp)));
        for (int i = 0; i < expected.Count; i++)
        {
            Assert.True(expected[i].Rgb.eq(actual[i].Rgb).all().item<bool>(), $"frame {i} differs");
        }
    }
}
