using SkiaSharp;
using VidKV.AI.Backend.Media;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

public sealed class AnimatedImageFrameSourceTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-anim-").FullName;

    public AnimatedImageFrameSourceTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Gif_FramesAreCompositedAsFfmpegDecodesThem_AtTheirDurations()
    {
        using var scope = NewDisposeScope();
        using var source = AnimatedImageFrameSource.Open(TestClips.Gif); // 20 frames of 100 ms; ffmpeg stores only the changes

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 5 }).ToList();

        Assert.True(source.IsAnimated);
        Assert.Equal(new MediaInfo(TestClips.Gif, "gif", "gif", 96, 72, TimeSpan.FromSeconds(2), 10, 20), source.Info);
        Assert.Equal(new long[] { 0, 4, 9, 14, 19 }, frames.Select(f => f.SourceIndex));
        Assert.Equal(new[] { 0, 0.4, 0.9, 1.4, 1.9 }, frames.Select(f => Math.Round(f.Timestamp.TotalSeconds, 3)));
        foreach (var frame in frames)
        {
            double diff = FfmpegFrameSourceTests.MeanAbsDiff(frame.Rgb, TestClips.ExtractFrame(TestClips.Gif, frame.SourceIndex));
            _output.WriteLine($"GIF frame {frame.SourceIndex}: mean |diff| vs ffmpeg = {diff:F4}");
            Assert.True(diff < 0.5, $"frame {frame.SourceIndex}: mean |diff| {diff}");
        }
    }

    [Fact]
    public void AnimatedWebP_FramesEqualTheLosslessSource()
    {
        using var scope = NewDisposeScope();
        using var source = AnimatedImageFrameSource.Open(TestClips.AnimatedWebP);
        string raw = Path.Combine(_temp, "frames.rgb");
        TestClips.Ffmpeg("-f lavfi -i testsrc2=size=96x72:rate=10 -t 2 -f rawvideo -pix_fmt rgb24", raw);
        byte[] all = File.ReadAllBytes(raw);
        int frameBytes = 96 * 72 * 3;

        var frames = source.Sample(new FrameSamplingOptions { FramesPerSecond = 2 }).ToList();

        Assert.Equal(("webp", 20, 96, 72), (source.Info.Format, source.Info.FrameCount, source.Info.Width, source.Info.Height));
        Assert.Equal(new long[] { 0, 5, 10, 15 }, frames.Select(f => f.SourceIndex));
        foreach (var frame in frames)
        {
            double diff = FfmpegFrameSourceTests.MeanAbsDiff(frame.Rgb, all.AsSpan((int)frame.SourceIndex * frameBytes, frameBytes).ToArray());
            _output.WriteLine($"WebP frame {frame.SourceIndex}: mean |diff| vs testsrc2 = {diff:F4}");
            Assert.True(diff < 3, $"frame {frame.SourceIndex}: mean |diff| {diff}");
        }
    }

    [Fact]
    public void StillPng_IsOneFrameAtTimeZero()
    {
        using var scope = NewDisposeScope();
        string png = Path.Combine(_temp, "still.png");
        var pixels = randint(0, 256, new long[] { 5, 7, 3 }).to(ScalarType.Byte);
        ImageFilesTests.WritePng(pixels, png);
        using var source = FrameSources.Open(png);

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 32 }).ToList();

        var frame = Assert.Single(frames);
        Assert.Equal(new MediaInfo(png, "png", "png", 7, 5, TimeSpan.Zero, 0, 1), source.Info);
        Assert.Equal(TimeSpan.Zero, frame.Timestamp);
        Assert.True(frame.Rgb.eq(pixels).all().item<bool>());
    }

    [Fact]
    public void JpegWithExifOrientation_IsReturnedUpright()
    {
        using var scope = NewDisposeScope();
        // 16x32 landscape pixels, white top-left quadrant, stored with orientation 6 ("rotate 90 degrees clockwise").
        var stored = zeros(new long[] { 16, 32, 3 }, ScalarType.Byte);
        stored[TensorIndex.Slice(0, 8), TensorIndex.Slice(0, 16)] = tensor((byte)255);
        string jpeg = Path.Combine(_temp, "phone.jpg");
        File.WriteAllBytes(jpeg, WithExifOrientation(EncodeJpeg(stored), 6));
        using var source = FrameSources.Open(jpeg);

        var frame = Assert.Single(source.Sample(new FrameSamplingOptions()));

        Assert.Equal((16, 32, 90), (source.Info.Width, source.Info.Height, source.Info.Rotation));
        Assert.Equal(new long[] { 32, 16, 3 }, frame.Rgb.shape);
        var upright = stored.rot90(-1, (0, 1)); // clockwise: the white quadrant is now top-right
        Assert.True(FfmpegFrameSourceTests.MeanAbsDiff(frame.Rgb, upright.contiguous().data<byte>().ToArray()) < 3);
        Assert.True(frame.Rgb[TensorIndex.Slice(0, 16), TensorIndex.Slice(8, 16)].to(ScalarType.Float32).mean().item<float>() > 240);
    }

    [Fact]
    public void Sample_Cancelled_StopsBetweenFrames()
    {
        using var scope = NewDisposeScope();
        using var source = AnimatedImageFrameSource.Open(TestClips.Gif);
        using var cts = new CancellationTokenSource();
        int seen = 0;

        Assert.ThrowsAny<OperationCanceledException>(() =>
        {
            foreach (var frame in source.Sample(new FrameSamplingOptions { FrameCount = 10 }, cts.Token))
            {
                seen++;
                cts.Cancel();
            }
        });

        Assert.Equal(1, seen);
    }

    [Fact]
    public void TruncatedGif_IsRejectedOrDecodesWhatIsThere()
    {
        using var scope = NewDisposeScope();
        byte[] bytes = File.ReadAllBytes(TestClips.Gif);

        var headerOnly = Assert.Throws<InvalidDataException>(() => FrameSources.Open(bytes.AsMemory(0, 12), "cut.gif"));
        using var half = FrameSources.Open(bytes.AsMemory(0, bytes.Length / 2), "half.gif");
        var frames = half.Sample(new FrameSamplingOptions { FrameCount = 4 }).ToList();

        Assert.Contains("cut.gif", headerOnly.Message, StringComparison.Ordinal);
        Assert.Contains("truncated or corrupt", headerOnly.Message, StringComparison.Ordinal);
        Assert.InRange(half.Info.FrameCount, 2, 19);
        Assert.Equal(4, frames.Count);
    }

    private static byte[] EncodeJpeg(Tensor rgb)
    {
        int h = (int)rgb.shape[0], w = (int)rgb.shape[1];
        var rgba = cat(new[] { rgb, full(new long[] { h, w, 1 }, 255, ScalarType.Byte) }, 2).contiguous().data<byte>().ToArray();
        using var bitmap = new SKBitmap(new SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul));
        rgba.CopyTo(bitmap.GetPixelSpan());
        using var data = bitmap.Encode(SKEncodedImageFormat.Jpeg, 95);
        return data.ToArray();
    }

    /// <summary>Inserts an APP1 Exif segment holding only an orientation tag right after the JPEG's SOI marker.</summary>
    private static byte[] WithExifOrientation(byte[] jpeg, ushort orientation)
    {
        byte[] app1 =
        {
            0xFF, 0xE1, 0x00, 0x22, (byte)'E', (byte)'x', (byte)'i', (byte)'f', 0, 0, // marker, length 34, "Exif\0\0"
            (byte)'M', (byte)'M', 0x00, 0x2A, 0x00, 0x00, 0x00, 0x08,                 // big-endian TIFF header, IFD at 8
            0x00, 0x01,                                                                // one entry
            0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, (byte)(orientation >> 8), (byte)orientation, 0x00, 0x00, // Orientation, SHORT, 1
            0x00, 0x00, 0x00, 0x00,                                                    // no next IFD
        };
        return jpeg[..2].Concat(app1).Concat(jpeg[2..]).ToArray();
    }
}
