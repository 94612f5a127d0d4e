using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Vision;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.LlavaOnevision;

/// <summary>
/// A LLaVA-OneVision checkpoint ready to answer: tokenizer, chat template (ChatML with <c>&lt;video&gt;</c> and
/// <c>&lt;image&gt;</c> placeholders), image and video preprocessing from the checkpoint's own files, the model, and
/// generation over a per-request compressed key-value cache.
/// </summary>
/// <remarks>
/// Not thread-safe: TorchSharp's dispose scopes belong to a thread, so run requests one at a time on one thread (the
/// connector's inference worker does). <see cref="VideoLanguageModelBase.Generate"/> is lazy; each step runs on the thread
/// that advances it.
/// </remarks>
public sealed class LlavaOnevisionVideoModel : VideoLanguageModelBase
{
    private LlavaOnevisionVideoModel(string directory, LlavaOnevisionModel model, Qwen2Tokenizer tokenizer, VideoFramePreprocessor video, AnyResImagePreprocessor image)
        : base(directory, tokenizer, model.Config.Text.EosTokenIds)
    {
        Model = model;
        VideoPreprocessor = video;
        ImagePreprocessor = image;
        Info = new ModelInfo("llava_onevision", model.Config.Text.MaxPositionEmbeddings, model.Config.Text.NumLayers)
        {
            DType = model.DType.ToString(),
            Device = model.Device.ToString(),
            ScaledTernaryValues = model.Config.ScaledTernaryValues,
        };
    }

    /// <inheritdoc />
    public override ModelInfo Info { get; }

    /// <summary>The model.</summary>
    public LlavaOnevisionModel Model { get; }

    /// <summary>Frame preprocessing.</summary>
    public VideoFramePreprocessor VideoPreprocessor { get; }

    /// <summary>Image preprocessing.</summary>
    public AnyResImagePreprocessor ImagePreprocessor { get; }

    /// <summary>Loads a checkpoint folder: config.json, safetensors weights, tokenizer.json, preprocessor configuration.</summary>
    /// <exception cref="FileNotFoundException">A required file is missing; the message names it.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or does not fit the model; the message names it.</exception>
    public static LlavaOnevisionVideoModel Load(string directory, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        VidKV.AI.Quantization.Native.TorchRuntime.EnsureLoaded();
        var tokenizer = Qwen2Tokenizer.FromDirectory(directory);
        var video = VideoFramePreprocessor.FromCheckpoint(directory);
        var image = AnyResImagePreprocessor.FromCheckpoint(directory);
        var model = LlavaOnevisionModel.Load(directory, options);
        return new LlavaOnevisionVideoModel(directory, model, tokenizer, video, image);
    }

    /// <summary>
    /// Renders, tokenizes and expands a request: prompt token ids with one placeholder per visual feature. Media given as
    /// files or bytes are decoded to count their frames.
    /// </summary>
    /// <exception cref="ArgumentException">Placeholder and media counts differ, or pixels have the wrong shape.</exception>
    public PromptLayout Layout(ChatRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        using var scope = NewDisposeScope();
        return Layout(request, Decode(request, CancellationToken.None));
    }

    /// <inheritdoc />
    private protected override void DisposeModel() => Model.Dispose();

    /// <inheritdoc />
    internal override PromptTokens Tokenize(ChatRequest request) => PromptTokens.Scan(
        Tokenizer.Encode(LlavaOnevisionChatTemplate.Render(request.Turns, addGenerationPrompt: true)),
        id => id == Model.Config.VideoTokenId || id == Model.Config.ImageTokenId,
        Tokenizer.TokenToId(LlavaOnevisionChatTemplate.TurnEnd));

    /// <inheritdoc />
    internal override DecodedMedia Decode(ChatRequest request, CancellationToken cancellationToken)
    {
        var budget = RequestBudget(request);
        var videos = new List<Tensor>(request.Videos.Count);
        for (int i = 0; i < request.Videos.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var source = request.Videos[i];
            if (source.Pixels is { } frames)
            {
                CheckFrames(frames, i + 1);
                videos.Add(IsPreprocessed(frames) ? frames : VideoPreprocessor.Preprocess(frames));
            }
            else
            {
                using var reader = source.OpenFrames(budget, cancellationToken);
                videos.Add(VideoFrames.LoadForModel(reader, request.Sampling, VideoPreprocessor, cancellationToken).PixelValues);
            }
        }

        var images = new List<Tensor>(request.Images.Count);
        for (int i = 0; i < request.Images.Count; i++)
        {
            var image = LoadImage(request, i, budget, cancellationToken);

            images.Add(image);
        }

        return new DecodedMedia(videos, images);
    }

    /// <inheritdoc />
    internal override PromptLayout Layout(ChatRequest request, DecodedMedia media)
    {
        var config = Model.Config;
        return PromptLayout.Expand(Tokenize(request).Ids, config.VideoTokenId, config.ImageTokenId, media,
            frames => VideoFramePreprocessor.CountVideoTokens((int)frames.shape[0], config.Vision.PatchesPerSide),
            image => ImagePreprocessor.CountImageTokens((int)image.shape[0], (int)image.shape[1], config.Vision.PatchesPerSide, config.VisionAspectRatio));
    }

    /// <inheritdoc />
    internal override EncodedPrompt Encode(PromptLayout layout, DecodedMedia media, KVCacheOptions cacheOptions)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(layout.Ids.Select(i => (long)i).ToArray()).reshape(1, -1);
        Tensor? videoFeatures = media.Videos.Count > 0 ? cat(media.Videos.Select(Model.EncodeVideo).ToList(), 0) : null;
        Tensor? imageFeatures = media.Images.Count > 0
            ? cat(media.Images.Select(i =>
            {
                using var tiles = ImagePreprocessor.Preprocess(i);
                return Model.EncodeImage(tiles.PixelValues, tiles.OriginalHeight, tiles.OriginalWidth);
            }).ToList(), 0)
            : null;
        var embeds = Model.MergeVisual(ids, Model.Embed(ids), videoFeatures, imageFeatures);
        var importance = cacheOptions.Values == ValueQuantization.Protected ? PromptImportance.Scores(embeds, layout.VideoSpans) : null;
        return new EncodedPrompt(layout, embeds.MoveToOuterDisposeScope())
        {
            Importance = importance?.MoveToOuterDisposeScope(),
            NextPosition = layout.Ids.Count,
        };
    }

    /// <inheritdoc />
    internal override ModelKVCache CreateCache(KVCacheOptions options) => Model.CreateCache(options);

    /// <inheritdoc />
    internal override VidKV.AI.Backend.Batching.IBatchedDecoder BatchedDecoder => Model;

    /// <inheritdoc />
    internal override CacheGeometry CacheGeometry => new(Model.Config.Text.NumLayers, Model.Config.Text.NumKeyValueHeads, Model.Config.Text.HeadDim, Model.DType, Model.Device);

    /// <inheritdoc />
    /// <remarks>Text tokens plus, per video, its tokens at <see cref="FrameSamplingOptions.FrameCount"/> frames (a video with
    /// fewer frames gets fewer); none with images (their tokens follow their size).</remarks>
    internal override int? PromptTokenBound(ChatRequest request, PromptTokens tokens)
    {
        if (request.Images.Count > 0)
        {
            return null;
        }

        var config = Model.Config;
        int videos = tokens.Ids.Count(id => id == config.VideoTokenId);
        long bound = tokens.Ids.Count - videos + ((long)videos * VideoFramePreprocessor.CountVideoTokens(request.Sampling.FrameCount, config.Vision.PatchesPerSide));
        return (int)Math.Min(bound, Info.ContextLength);
    }

    /// <inheritdoc />
    internal override Tensor Embed(Tensor ids) => Model.Embed(ids);

    /// <inheritdoc />
    internal override Tensor Forward(DecoderInput input) => Model.Forward(input);

    /// <inheritdoc />
    internal override Tensor Logits(Tensor hidden) => Model.Logits(hidden);

    private void CheckFrames(Tensor frames, int index)
    {
        bool raw = frames.dim() == 4 && frames.dtype == ScalarType.Byte && frames.shape[3] == 3;
        if (frames.dim() != 4 || frames.shape[0] < 1 || !(raw || IsPreprocessed(frames)))
        {
            int s = Model.Config.Vision.ImageSize;
            throw new ArgumentException(
                $"Video {index} must be uint8 frames [F >= 1, H, W, 3] RGB, or preprocessed float frames [F, 3, {s}, {s}]; got {frames.dtype} [{string.Join(", ", frames.shape)}].");
        }
    }

    /// <summary>Whether frames are already the model's input: floating point [F, 3, S, S].</summary>
    private bool IsPreprocessed(Tensor frames)
    {
        int s = Model.Config.Vision.ImageSize;
        return frames.dim() == 4 && frames.is_floating_point() && frames.shape[1] == 3 && frames.shape[2] == s && frames.shape[3] == s;
    }
}
