using SkiaSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// An animated GIF or WebP, or a still PNG, JPEG, WebP or BMP (a one-frame source), decoded with SkiaSharp. Each
/// frame's timestamp is the sum of the durations of the frames before it.
/// </summary>
/// <remarks>
/// <para>
/// Frames are composited as browsers show them (disposal and blending included), decoding forward from the nearest
/// frame they depend on, so only the frames up to the last sampled one are decoded, and one canvas is held. As
/// browsers do, a frame duration of 10 ms or less counts as 100 ms (GIFs often say 0). Transparent pixels keep the
/// colour the decoder gives them (alpha is dropped, as PIL's <c>convert("RGB")</c> does). A still image's EXIF
/// orientation is applied.
/// </para>
/// <para>Not thread-safe. The encoded file is held in memory until disposed.</para>
/// </remarks>
internal sealed class AnimatedImageFrameSource : IFrameSource
{
    /// <summary>Durations at or below this (milliseconds) count as <see cref="DefaultFrameDuration"/>.</summary>
    private const int MinimumFrameDuration = 10;

    /// <summary>What browsers use for a missing or tiny frame duration.</summary>
    private static readonly TimeSpan DefaultFrameDuration = TimeSpan.FromMilliseconds(100);

    private readonly SKData _data;
    private readonly SKCodecFrameInfo[] _frames;
    private readonly double[] _starts;
    private readonly SKEncodedOrigin _origin;
    private bool _disposed;

    private AnimatedImageFrameSource(string name, string format, SKData data, SKCodec codec)
    {
        Name = name;
        _data = data;
        _origin = codec.EncodedOrigin;
        _frames = codec.FrameCount > 1 ? codec.FrameInfo : Array.Empty<SKCodecFrameInfo>();
        var durations = _frames.Length > 1
            ? _frames.Select(f => f.Duration <= MinimumFrameDuration ? DefaultFrameDuration : TimeSpan.FromMilliseconds(f.Duration)).ToArray()
            : new[] { TimeSpan.Zero };
        FrameDurations = durations;
        _starts = new double[durations.Length];
        for (int i = 1; i < durations.Length; i++)
        {
            _starts[i] = _starts[i - 1] + durations[i - 1].TotalSeconds;
        }

        var total = TimeSpan.FromTicks(durations.Sum(d => d.Ticks));
        bool swap = _frames.Length <= 1 && ImageFiles.SwapsAxes(_origin);
        int width = swap ? codec.Info.Height : codec.Info.Width, height = swap ? codec.Info.Width : codec.Info.Height;
        Info = new MediaInfo(name, format, format, width, height, total, total > TimeSpan.Zero ? durations.Length / total.TotalSeconds : 0, durations.Length)
        {
            Rotation = _frames.Length <= 1 ? OriginRotation(_origin) : 0,
        };
    }

    /// <inheritdoc />
    public MediaInfo Info { get; }

    /// <summary>The path or name the image was opened from.</summary>
    public string Name { get; }

    /// <summary>Whether the image has more than one frame.</summary>
    public bool IsAnimated => _frames.Length > 1;

    /// <summary>How long each frame is shown (after the 10 ms rule); one zero for a still image.</summary>
    public IReadOnlyList<TimeSpan> FrameDurations { get; }

    /// <summary>Opens an image file.</summary>
    /// <param name="path">A GIF, WebP, PNG, JPEG or BMP file.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">It is empty, or not an image SkiaSharp can decode (e.g. truncated).</exception>
    public static AnimatedImageFrameSource Open(string path)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Image file '{path}' does not exist.", path);
        }

        return Open(File.ReadAllBytes(path), path);
    }

    /// <summary>Opens an image held in memory (the bytes are copied).</summary>
    /// <param name="bytes">The encoded image.</param>
    /// <param name="name">Names it in messages and <see cref="MediaInfo.Source"/>.</param>
    /// <exception cref="InvalidDataException">It is empty, or not an image SkiaSharp can decode.</exception>
    public static AnimatedImageFrameSource Open(ReadOnlyMemory<byte> bytes, string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (bytes.IsEmpty)
        {
            throw new InvalidDataException($"'{name}' is empty (0 bytes): there is no image in it. Check that the upload or copy completed.");
        }

        var type = MediaSniffer.Sniff(bytes.Span[..Math.Min(bytes.Length, MediaSniffer.HeadLength)]);
        var data = SKData.CreateCopy(bytes.Span);
        using var codec = SKCodec.Create(data);
        if (codec is null)
        {
            data.Dispose();
            string what = type.Family == MediaFamily.Image ? $"starts like a {type.Format.ToUpperInvariant()} image but cannot be decoded: it is truncated or corrupt" : "is not an image this library can decode (PNG, JPEG, WebP, BMP, GIF)";
            throw new InvalidDataException($"'{name}' {what}.");
        }

        string format = codec.EncodedFormat switch
        {
            SKEncodedImageFormat.Gif => "gif",
            SKEncodedImageFormat.Webp => "webp",
            SKEncodedImageFormat.Png => "png",
            SKEncodedImageFormat.Jpeg => "jpeg",
            SKEncodedImageFormat.Bmp => "bmp",
            var other => other.ToString().ToLowerInvariant(),
        };
        return new AnimatedImageFrameSource(name, format, data, codec);
    }

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The source is disposed.</exception>
    public IEnumerable<SampledFrame> Sample(FrameSamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        options.Validate();
        var indices = FrameIndexSampler.Select(_starts.Length, i => _starts[i], Info.Duration.TotalSeconds, options, Name);
        return IsAnimated ? SampleAnimation(indices, cancellationToken) : SampleStill(cancellationToken);
    }

    /// <summary>Releases the encoded image.</summary>
    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _data.Dispose();
        }
    }

    private static int OriginRotation(SKEncodedOrigin origin) => origin switch
    {
        SKEncodedOrigin.BottomRight or SKEncodedOrigin.BottomLeft => 180,
        SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom => 90,
        SKEncodedOrigin.LeftBottom or SKEncodedOrigin.LeftTop => 270,
        _ => 0,
    };

    private IEnumerable<SampledFrame> SampleStill(CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        using var stream = new MemoryStream(_data.ToArray(), writable: false);
        yield return new SampledFrame(ImageFiles.Decode(stream, Name), TimeSpan.Zero, 0);
    }

    private IEnumerable<SampledFrame> SampleAnimation(long[] indices, CancellationToken cancellationToken)
    {
        using var codec = SKCodec.Create(_data) ?? throw new InvalidDataException($"'{Name}' can no longer be decoded.");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var canvas = new SKBitmap(info); // the composited frame 'current'
        int current = -1;
        foreach (long target in indices)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed, this);
            int j = (int)target;
            if (!CanBuildOn(current, j))
            {
                // Walk forward from the latest frame that needs nothing before it (or from what the canvas holds).
                int start = current >= 0 && current < j ? current + 1 : 0;
                for (int k = j; k > start; k--)
                {
                    if (_frames[k].RequiredFrame < 0)
                    {
                        start = k;
                        break;
                    }
                }

                for (int k = start; k < j; k++)
                {
                    DecodeFrame(codec, info, canvas, k, current);
                    current = k;
                }
            }

            DecodeFrame(codec, info, canvas, j, current);
            current = j;
            yield return new SampledFrame(ImageFiles.ToRgb(canvas), TimeSpan.FromSeconds(_starts[j]), j);
        }
    }

    /// <summary>Whether frame <paramref name="j"/> can be drawn over the canvas holding frame <paramref name="current"/>.</summary>
    private bool CanBuildOn(int current, int j)
        => _frames[j].RequiredFrame < 0 || (current >= _frames[j].RequiredFrame && current < j && _frames[current].DisposalMethod != SKCodecAnimationDisposalMethod.RestorePrevious);

    private void DecodeFrame(SKCodec codec, SKImageInfo info, SKBitmap canvas, int index, int current)
    {
        // Skia's rule: any frame in [RequiredFrame, index) not disposed with RestorePrevious is a valid base.
        int prior = CanBuildOn(current, index) && _frames[index].RequiredFrame >= 0 ? current : -1;
        var result = codec.GetPixels(info, canvas.GetPixels(), new SKCodecOptions(index, prior));
        if (result is not (SKCodecResult.Success or SKCodecResult.IncompleteInput))
        {
            throw new InvalidDataException($"'{Name}': frame {index} of {_frames.Length} could not be decoded ({result}); the file is truncated or corrupt.");
        }
    }
}
