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
/// <para>Not thread-safe. The encoded file is held in memory (once) until disposed.</para>
/// </remarks>
internal sealed class AnimatedImageFrameSource : IFrameSource
{
    /// <summary>Durations at or below this (milliseconds) count as <see cref="DefaultFrameDuration"/>.</summary>
    private const int MinimumFrameDuration = 10;

    /// <summary>What browsers use for a missing or tiny frame duration.</summary>
    private static readonly TimeSpan DefaultFrameDuration = TimeSpan.FromMilliseconds(100);

    private readonly SKData _data;
    private readonly MediaBudget _budget;
    private readonly SKCodecFrameInfo[] _frames;
    private readonly double[] _starts;
    private readonly SKEncodedOrigin _origin;
    private bool _disposed;

    private AnimatedImageFrameSource(string name, string format, SKData data, SKCodec codec, MediaBudget budget)
    {
        Name = name;
        _data = data;
        _budget = budget;
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

    /// <summary>Opens an image file, reading it once into native memory.</summary>
    /// <param name="path">A GIF, WebP, PNG, JPEG or BMP file (links are followed; it must be a regular file).</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <param name="cancellationToken">Checked while the file is read.</param>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="InvalidDataException">It is empty, not a regular file, or not an image SkiaSharp can decode (e.g. truncated).</exception>
    /// <exception cref="MediaLimitExceededException">The file, its declared size or its frame count is over a limit.</exception>
    public static AnimatedImageFrameSource Open(string path, MediaBudget? budget = null, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        budget ??= new MediaBudget(MediaLimits.Default, sharedDeadline: false);
        using var operation = budget.Begin(cancellationToken);
        SKData data;
        try
        {
            using var handle = EncodedMedia.OpenFile(path, "Image file", budget, out long length);
            data = EncodedMedia.ReadFile(handle, length, path, operation.Token);
        }
        catch (OperationCanceledException ex)
        {
            throw operation.Stop(path, ex);
        }

        return Open(data, path, budget);
    }

    /// <summary>Opens an image held in memory (the bytes are pinned, not copied, until the source is disposed).</summary>
    /// <param name="bytes">The encoded image.</param>
    /// <param name="name">Names it in messages and <see cref="MediaInfo.Source"/>.</param>
    /// <param name="budget">The limits; <see langword="null"/> for <see cref="MediaLimits.Default"/>.</param>
    /// <exception cref="InvalidDataException">It is empty, or not an image SkiaSharp can decode.</exception>
    /// <exception cref="MediaLimitExceededException">The bytes, the declared size or the frame count are over a limit.</exception>
    public static AnimatedImageFrameSource Open(ReadOnlyMemory<byte> bytes, string name, MediaBudget? budget = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        budget ??= new MediaBudget(MediaLimits.Default, sharedDeadline: false);
        budget.CheckBytes(name, bytes.Length);
        return Open(EncodedMedia.Wrap(bytes), name, budget);
    }

    /// <summary>Opens encoded data, taking ownership of it: the header's size and frame count are checked before any decoding.</summary>
    internal static unsafe AnimatedImageFrameSource Open(SKData data, string name, MediaBudget budget)
    {
        try
        {
            if (data.Size == 0)
            {
                throw new InvalidDataException($"'{name}' is empty (0 bytes): there is no image in it. Check that the upload or copy completed.");
            }

            var type = MediaSniffer.Sniff(new ReadOnlySpan<byte>((void*)data.Data, (int)Math.Min(data.Size, MediaSniffer.HeadLength)));
            using var codec = SKCodec.Create(data);
            if (codec is null)
            {
                string what = type.Family == MediaFamily.Image ? $"starts like a {type.Format.ToUpperInvariant()} image but cannot be decoded: it is truncated or corrupt" : "is not an image this library can decode (PNG, JPEG, WebP, BMP, GIF)";
                throw new InvalidDataException($"'{name}' {what}.");
            }

            bool swap = codec.FrameCount <= 1 && ImageFiles.SwapsAxes(codec.EncodedOrigin);
            budget.CheckSize(name, swap ? codec.Info.Height : codec.Info.Width, swap ? codec.Info.Width : codec.Info.Height);
            budget.CheckFrames(name, codec.FrameCount);
            string format = codec.EncodedFormat switch
            {
                SKEncodedImageFormat.Gif => "gif",
                SKEncodedImageFormat.Webp => "webp",
                SKEncodedImageFormat.Png => "png",
                SKEncodedImageFormat.Jpeg => "jpeg",
                SKEncodedImageFormat.Bmp => "bmp",
                var other => other.ToString().ToLowerInvariant(),
            };
            return new AnimatedImageFrameSource(name, format, data, codec, budget);
        }
        catch
        {
            data.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <exception cref="ObjectDisposedException">The source is disposed.</exception>
    public IEnumerable<SampledFrame> Sample(FrameSamplingOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ObjectDisposedException.ThrowIf(_disposed, this);
        options.Validate();
        var indices = FrameIndexSampler.Select(_starts.Length, i => _starts[i], Info.Duration.TotalSeconds, options, Name);
        var plan = IsAnimated ? Plan(indices) : new List<(int Frame, int Prior, bool Keep)> { (0, -1, true) };

        // Every frame composited on the way to the sampled ones is decoded: all are taken from the budget before the first.
        _budget.Charge(Name, plan.Count, Info.Width, Info.Height);
        var operation = _budget.Begin(cancellationToken);
        return operation.Guard(IsAnimated ? SampleAnimation(plan, operation.Token) : SampleStill(operation.Token), Name);
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
        yield return new SampledFrame(ImageFiles.Decode(_data, Name, _budget, charged: true, cancellationToken), TimeSpan.Zero, 0);
    }

    /// <summary>
    /// The frames to decode, in order, to produce the sampled ones: each frame is composited over the canvas holding the
    /// previous step (Prior) or from scratch (-1), walking forward from the nearest frame that depends on nothing before it.
    /// </summary>
    private List<(int Frame, int Prior, bool Keep)> Plan(long[] indices)
    {
        var steps = new List<(int Frame, int Prior, bool Keep)>();
        int current = -1;
        void Step(int index, bool keep)
        {
            // Skia's rule: any frame in [RequiredFrame, index) not disposed with RestorePrevious is a valid base.
            int prior = CanBuildOn(current, index) && _frames[index].RequiredFrame >= 0 ? current : -1;
            steps.Add((index, prior, keep));
            current = index;
        }

        foreach (long target in indices)
        {
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
                    Step(k, keep: false);
                }
            }

            Step(j, keep: true);
        }

        return steps;
    }

    private IEnumerable<SampledFrame> SampleAnimation(List<(int Frame, int Prior, bool Keep)> plan, CancellationToken cancellationToken)
    {
        using var codec = SKCodec.Create(_data) ?? throw new InvalidDataException($"'{Name}' can no longer be decoded.");
        var info = new SKImageInfo(codec.Info.Width, codec.Info.Height, SKColorType.Rgba8888, SKAlphaType.Unpremul);
        using var canvas = ImageFiles.AllocatePixels(Name, info.Width, info.Height); // the composited frame, [H, W, 4]
        foreach (var (frame, prior, keep) in plan)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ObjectDisposedException.ThrowIf(_disposed, this);
            ImageFiles.DecodeInto(codec, info, canvas, Name, new SKCodecOptions(frame, prior), $"frame {frame} of {_frames.Length}");
            if (keep)
            {
                using var rgb = canvas.narrow(2, 0, 3);
                yield return new SampledFrame(rgb.contiguous(), TimeSpan.FromSeconds(_starts[frame]), frame);
            }
        }
    }

    /// <summary>Whether frame <paramref name="j"/> can be drawn over the canvas holding frame <paramref name="current"/>.</summary>
    private bool CanBuildOn(int current, int j)
        => _frames[j].RequiredFrame < 0 || (current >= _frames[j].RequiredFrame && current < j && _frames[current].DisposalMethod != SKCodecAnimationDisposalMethod.RestorePrevious);
}
