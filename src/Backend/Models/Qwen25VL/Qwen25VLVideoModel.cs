using TorchSharp;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// A Qwen2.5-VL or Qwen2-VL checkpoint ready to answer: tokenizer, chat template, the processors' dynamic resolution and
/// frame sampling from the checkpoint's own files, 3-D rotary positions with video time in seconds, the model, and
/// generation over a per-request compressed key-value cache.
/// </summary>
/// <remarks>
/// <para>
/// Videos read from files or bytes are sampled as the checkpoint's video processor samples them (its <c>fps</c> within
/// <c>min_frames</c>..<c>max_frames</c>, a multiple of the temporal patch size) when the request keeps the default
/// sampling, spread uniformly over the video (transformers picks <c>arange(0, total, total / n)</c>; this picks the same
/// count with <see cref="FrameSamplingOptions"/>' uniform rule); a request's own frame count or rate wins. Videos given as
/// pixels are taken as sampled at <see cref="FrameSamplingOptions.FramesPerSecond"/>, else at 24 frames per second, as
/// transformers assumes for frames without metadata.
/// </para>
/// <para>
/// Not thread-safe: TorchSharp's dispose scopes belong to a thread, so run requests one at a time on one thread.
/// </para>
/// </remarks>
public sealed class Qwen25VLVideoModel : VideoLanguageModelBase
{
    /// <summary>The frame rate transformers assumes for video frames given without metadata.</summary>
    public const double DefaultPixelFrameRate = 24.0;

    private Qwen25VLVideoModel(string directory, Qwen25VLModel model, Qwen2Tokenizer tokenizer, QwenVisionPreprocessor preprocessor)
        : base(directory, tokenizer, model.Config.Text.EosTokenIds)
    {
        Model = model;
        Preprocessor = preprocessor;
        Info = new ModelInfo(model.Config.ModelType, model.Config.Text.MaxPositionEmbeddings, model.Config.Text.NumLayers)
        {
            DType = model.DType.ToString(),
            Device = model.Device.ToString(),
        };
    }

    /// <inheritdoc />
    public override ModelInfo Info { get; }

    /// <summary>The model.</summary>
    public Qwen25VLModel Model { get; }

    /// <summary>Image and video preprocessing.</summary>
    public QwenVisionPreprocessor Preprocessor { get; }

    /// <summary>Loads a checkpoint folder: config.json, safetensors weights, tokenizer.json, processor configuration.</summary>
    /// <exception cref="FileNotFoundException">A required file is missing; the message names it.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or does not fit the model; the message names it.</exception>
    public static Qwen25VLVideoModel Load(string directory, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        VidKV.AI.Quantization.Native.TorchRuntime.EnsureLoaded();
        var tokenizer = Qwen2Tokenizer.FromDirectory(directory);
        var preprocessor = QwenVisionPreprocessor.FromCheckpoint(directory);
        var model = Qwen25VLModel.Load(directory, options);
        return new Qwen25VLVideoModel(directory, model, tokenizer, preprocessor);
    }

    /// <summary>Renders, tokenizes and expands a request: prompt token ids with one placeholder per merged patch.</summary>
    /// <exception cref="ArgumentException">Placeholder and media counts differ, or pixels have the wrong shape.</exception>
    public PromptLayout Layout(ChatRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var scope = NewDisposeScope();
        return Layout(request, Decode(request, CancellationToken.None));
    }

    /// <summary>The 3-D position ids [3, T] of a request's prompt and the position of the first generated token.</summary>
    /// <exception cref="ArgumentException">Placeholder and media counts differ, or pixels have the wrong shape.</exception>
    public (Tensor Positions, long Next) PositionIds(ChatRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var scope = NewDisposeScope();
        var media = Decode(request, CancellationToken.None);
        var layout = Layout(request, media);
        var (positions, next) = Model.PositionIds(layout.Ids, Visuals(layout, media));
        return (positions.MoveToOuterDisposeScope(), next);
    }

    /// <inheritdoc />
    private protected override void DisposeModel() => Model.Dispose();

    /// <inheritdoc />
    /// <remarks>
    /// The media end lies just after the last <c>&lt;|vision_end|&gt;</c> (the video or image closed, before the question's
    /// text); turn ends lie after each <c>&lt;|im_end|&gt;</c>. The text after a cut continues from the multimodal rotary
    /// position after the prefix (<see cref="VideoMemoryPrefix.NextPosition"/>), not from its token count.
    /// </remarks>
    internal override PromptTokens Tokenize(ChatRequest request) => PromptTokens.Scan(
        Tokenizer.Encode(QwenChatTemplate.Render(request.Turns, addGenerationPrompt: true)),
        id => id == Model.Config.VisionEndTokenId,
        Tokenizer.TokenToId("<|im_end|>"));

    /// <inheritdoc />
    internal override DecodedMedia Decode(ChatRequest request, CancellationToken cancellationToken)
    {
        var videos = new List<Tensor>(request.Videos.Count);
        var budget = RequestBudget(request);
        var rates = new List<double>(request.Videos.Count);
        for (int i = 0; i < request.Videos.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var source = request.Videos[i];
            if (source.Pixels is { } frames)
            {
                videos.Add(FromPixels(frames, i + 1));
                rates.Add(request.Sampling.FramesPerSecond ?? DefaultPixelFrameRate);
            }
            else
            {
                using var reader = source.OpenFrames(budget, cancellationToken);
                var (pixels, rate) = Sample(reader, request.Sampling, cancellationToken);
                videos.Add(pixels);
                rates.Add(rate);
            }
        }

        var images = new List<Tensor>(request.Images.Count);
        for (int i = 0; i < request.Images.Count; i++)
        {
            var image = LoadImage(request, i, budget, cancellationToken);

            images.Add(Preprocessor.PreprocessImage(image));
        }

        return new DecodedMedia(videos, images) { VideoFrameRates = rates };
    }

    /// <inheritdoc />
    internal override PromptLayout Layout(ChatRequest request, DecodedMedia media)
    {
        var config = Model.Config;
        int merge = config.Vision.SpatialMergeSize;
        return PromptLayout.Expand(Tokenize(request).Ids, config.VideoTokenId, config.ImageTokenId, media, v => Grid(v).Tokens(merge), i => Grid(i).Tokens(merge));
    }

    /// <inheritdoc />
    internal override EncodedPrompt Encode(PromptLayout layout, DecodedMedia media, KVCacheOptions cacheOptions)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(layout.Ids.Select(i => (long)i).ToArray()).reshape(1, -1);
        var videoFeatures = Features(media.Videos);
        var imageFeatures = Features(media.Images);
        var embeds = Model.MergeVisual(ids, Model.Embed(ids), videoFeatures, imageFeatures);
        var (positions, next) = Model.PositionIds(layout.Ids, Visuals(layout, media));
        var importance = cacheOptions.Values == ValueQuantization.Protected ? PromptImportance.Scores(embeds, layout.VideoSpans) : null;
        return new EncodedPrompt(layout, embeds.MoveToOuterDisposeScope())
        {
            PositionIds = positions.MoveToOuterDisposeScope(),
            Importance = importance?.MoveToOuterDisposeScope(),
            NextPosition = next,
        };
    }

    /// <inheritdoc />
    internal override ModelKVCache CreateCache(KVCacheOptions options) => Model.CreateCache(options);

    /// <inheritdoc />
    internal override CacheGeometry CacheGeometry => new(Model.Config.Text.NumLayers, Model.Config.Text.NumKeyValueHeads, Model.Config.Text.HeadDim, Model.DType, Model.Device);

    /// <inheritdoc />
    /// <remarks>Its multimodal positions of a later part are computed only for the whole prompt, so it prefills whole.</remarks>
    internal override bool CanPrefillInChunks => false;

    /// <inheritdoc />
    internal override Tensor Embed(Tensor ids) => Model.Embed(ids);

    /// <inheritdoc />
    internal override Tensor Forward(DecoderInput input) => Model.Forward(input);

    /// <inheritdoc />
    internal override Tensor Logits(Tensor hidden) => Model.Logits(hidden);

    /// <inheritdoc />
    /// <remarks>Generated tokens are text: the same position on all three axes, counting on from the prompt's largest.</remarks>
    internal override Tensor? DecodePositionIds(long position) => tensor(new[] { position });

    /// <inheritdoc />
    /// <remarks>Text after a cut prefix: the same position on all three axes, counting on from the prefix's next position.</remarks>
    internal override Tensor? TextPositionIds(long start, int count)
    {
        using var first = start.ToScalar();
        using var end = (start + count).ToScalar();
        return arange(first, end, VidKV.AI.Quantization.Scalars.OneInt64, ScalarType.Int64);
    }

    /// <inheritdoc />
    /// <remarks>
    /// Multimodal positions after a video do not equal the token count: the next text token continues from the largest
    /// position of the first <paramref name="tokens"/> tokens on any axis, plus one (transformers' <c>get_rope_index</c>).
    /// </remarks>
    internal override long PositionAfter(EncodedPrompt prompt, int tokens)
    {
        using var scope = NewDisposeScope();
        return prompt.PositionIds!.narrow(-1, 0, tokens).max().item<long>() + 1;
    }

    /// <summary>The patch grid of preprocessed frames [F, 3, H, W] (an image: F = 1).</summary>
    private VisionGrid Grid(Tensor frames)
    {
        var c = Model.Config.Vision;
        long t = frames.shape[0] == 1 ? 1 : frames.shape[0] / c.TemporalPatchSize;
        return new VisionGrid((int)t, (int)(frames.shape[2] / c.PatchSize), (int)(frames.shape[3] / c.PatchSize));
    }

    /// <summary>The prompt's images and videos in order of appearance, with their grids and seconds per temporal patch.</summary>
    private List<VisualInput> Visuals(PromptLayout layout, DecodedMedia media)
    {
        var config = Model.Config;
        var visuals = new List<VisualInput>();
        int video = 0, image = 0;
        for (int i = 0; i < layout.Ids.Count; i++)
        {
            int id = layout.Ids[i];
            bool starts = i == 0 || layout.Ids[i - 1] != id;
            if (id == config.VideoTokenId && starts)
            {
                double rate = media.VideoFrameRates?[video] ?? DefaultPixelFrameRate;
                visuals.Add(new VisualInput(true, Grid(media.Videos[video++]), config.Vision.TemporalPatchSize / rate));
            }
            else if (id == config.ImageTokenId && starts)
            {
                visuals.Add(new VisualInput(false, Grid(media.Images[image++])));
            }
        }

        return visuals;
    }

    /// <summary>Features of the given preprocessed inputs, in order, through one vision pass; null for none.</summary>
    private Tensor? Features(IReadOnlyList<Tensor> inputs)
    {
        if (inputs.Count == 0)
        {
            return null;
        }

        using var scope = NewDisposeScope();
        var patches = new List<Tensor>(inputs.Count);
        var grids = new List<VisionGrid>(inputs.Count);
        foreach (var input in inputs)
        {
            var (p, g) = Preprocessor.Patchify(input);
            patches.Add(p);
            grids.Add(g);
        }

        return Model.EncodeVisual(patches.Count == 1 ? patches[0] : cat(patches, 0), grids).MoveToOuterDisposeScope();
    }

    /// <summary>Video pixels: raw uint8 [F, H, W, 3] are preprocessed; float [F, 3, H, W] (sides multiples of 28) are taken as preprocessed.</summary>
    private Tensor FromPixels(Tensor frames, int index)
    {
        int factor = Preprocessor.Video.Factor;
        if (frames.dim() == 4 && frames.dtype == ScalarType.Byte && frames.shape[3] == 3 && frames.shape[0] >= 1)
        {
            return Preprocessor.PreprocessFrames(frames);
        }

        if (frames.dim() == 4 && frames.is_floating_point() && frames.shape[0] >= 1 && frames.shape[1] == 3 && frames.shape[2] % factor == 0 && frames.shape[3] % factor == 0)
        {
            return Preprocessor.PadFrames(frames.to(ScalarType.Float32));
        }

        throw new ArgumentException(
            $"Video {index} must be uint8 frames [F >= 1, H, W, 3] RGB, or preprocessed float frames [F, 3, H, W] with H and W multiples of {factor}; got {frames.dtype} [{string.Join(", ", frames.shape)}].");
    }

    /// <summary>Decodes the sampled frames of a video, each resized and normalized as it arrives, and the rate they were sampled at.</summary>
    private (Tensor Frames, double Rate) Sample(IFrameSource source, FrameSamplingOptions requested, CancellationToken cancellationToken)
    {
        var info = source.Info;
        double start = requested.Start?.TotalSeconds ?? 0;
        double end = requested.End is { } e ? Math.Min(e.TotalSeconds, info.Duration.TotalSeconds > 0 ? info.Duration.TotalSeconds : e.TotalSeconds) : info.Duration.TotalSeconds;
        double seconds = end - start;
        var options = requested;
        if (requested with { Start = null, End = null } == new FrameSamplingOptions() && info.FrameCount > 0)
        {
            // The default request: the checkpoint's own sampling (fps within min/max frames), over the frames in range.
            long inRange = seconds > 0 && info.Duration.TotalSeconds > 0
                ? Math.Max(1, (long)Math.Round(info.FrameCount * Math.Min(1.0, seconds / info.Duration.TotalSeconds)))
                : info.FrameCount;
            options = requested with { FrameCount = Math.Min(1024, Preprocessor.SampledFrameCount(inRange, info.FrameRate)) };
        }

        var frames = new List<Tensor>();
        try
        {
            foreach (var frame in source.Sample(options, cancellationToken))
            {
                using (var rgb = frame.Rgb)
                using (var batch = rgb.unsqueeze(0))
                {
                    frames.Add(Preprocessor.ResizeFrames(batch));
                }
            }

            if (frames.Count == 0)
            {
                throw new InvalidDataException($"'{info.Source}' gave no frame.");
            }

            using var all = cat(frames, 0);
            double rate = options.FramesPerSecond ?? (seconds > 0 ? frames.Count / seconds : DefaultPixelFrameRate);
            return (Preprocessor.PadFrames(all), rate);
        }
        finally
        {
            foreach (var f in frames)
            {
                f.Dispose();
            }
        }
    }
}
