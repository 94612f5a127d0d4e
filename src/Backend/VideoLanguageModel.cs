using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Vision;
using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization.Quantizers;
using static TorchSharp.torch;

namespace VidKV.AI.Backend;

/// <summary>
/// A LLaVA-OneVision checkpoint ready to answer: tokenizer, chat template, image and video preprocessing from the
/// checkpoint's own files, the model, and generation over a per-request compressed key-value cache.
/// </summary>
/// <remarks>
/// Not thread-safe: TorchSharp's dispose scopes belong to a thread, so run requests one at a time on one thread (the
/// connector's inference worker does). <see cref="Generate"/> is lazy; each step runs on the thread that advances it.
/// </remarks>
public sealed class VideoLanguageModel : IDisposable
{
    private readonly HashSet<int> _endOfTurn;

    private VideoLanguageModel(string directory, LlavaOnevisionModel model, Qwen2Tokenizer tokenizer, VideoFramePreprocessor video, AnyResImagePreprocessor image)
    {
        Directory = directory;
        Model = model;
        Tokenizer = tokenizer;
        VideoPreprocessor = video;
        ImagePreprocessor = image;
        _endOfTurn = new HashSet<int>(model.Config.Text.EosTokenIds);
        foreach (var token in new[] { "<|im_end|>", "<|endoftext|>" })
        {
            if (tokenizer.TokenToId(token) is { } id)
            {
                _endOfTurn.Add(id);
            }
        }

        if (tokenizer.EosTokenId is { } eos)
        {
            _endOfTurn.Add(eos);
        }
    }

    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>The model.</summary>
    public LlavaOnevisionModel Model { get; }

    /// <summary>The tokenizer.</summary>
    public Qwen2Tokenizer Tokenizer { get; }

    /// <summary>Frame preprocessing.</summary>
    public VideoFramePreprocessor VideoPreprocessor { get; }

    /// <summary>Image preprocessing.</summary>
    public AnyResImagePreprocessor ImagePreprocessor { get; }

    /// <summary>Test hook: called with each request's cache when it is created.</summary>
    internal Action<ModelKVCache>? CacheCreated { get; set; }

    /// <summary>Token ids that end a turn.</summary>
    public IReadOnlySet<int> EndOfTurnTokens => _endOfTurn;

    /// <summary>Loads a checkpoint folder: config.json, safetensors weights, tokenizer.json, preprocessor configuration.</summary>
    /// <exception cref="FileNotFoundException">A required file is missing; the message names it.</exception>
    /// <exception cref="InvalidDataException">A file is malformed or does not fit the model; the message names it.</exception>
    public static VideoLanguageModel Load(string directory, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        var tokenizer = Qwen2Tokenizer.FromDirectory(directory);
        var video = VideoFramePreprocessor.FromCheckpoint(directory);
        var image = AnyResImagePreprocessor.FromCheckpoint(directory);
        var model = LlavaOnevisionModel.Load(directory, options);
        return new VideoLanguageModel(directory, model, tokenizer, video, image);
    }

    /// <summary>
    /// Generates a reply, one update per token. The key-value cache is created for this call and freed when the
    /// enumeration ends, is abandoned (disposed) or fails. Cancellation is checked before every token.
    /// </summary>
    /// <exception cref="ArgumentException">The request or an option is invalid (placeholder and media counts differ,
    /// prompt longer than the context, bad pixels); the message says which.</exception>
    /// <exception cref="OperationCanceledException">The token was cancelled.</exception>
    public IEnumerable<GenerationUpdate> Generate(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(cacheOptions);
        options.Validate();
        cacheOptions.Validate();
        return GenerateCore(request, options, cacheOptions, cancellationToken);
    }

    /// <summary>Renders, tokenizes and expands a request: prompt token ids with one placeholder per visual feature.</summary>
    public PromptLayout Layout(ChatRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        string text = LlavaOnevisionChatTemplate.Render(request.Turns, addGenerationPrompt: true);
        var ids = new List<int>();
        int videoIndex = 0, imageIndex = 0, videoTokens = 0, imageTokens = 0;
        var spans = new List<(int Start, int Length)>();
        foreach (int id in Tokenizer.Encode(text))
        {
            if (id == Model.Config.VideoTokenId)
            {
                if (videoIndex >= request.Videos.Count)
                {
                    throw new ArgumentException($"The conversation has more video parts than the {request.Videos.Count} videos given.", nameof(request));
                }

                var frames = request.Videos[videoIndex++];
                CheckFrames(frames, videoIndex);
                int count = VideoFramePreprocessor.CountVideoTokens((int)frames.shape[0], Model.Config.Vision.PatchesPerSide);
                spans.Add((ids.Count, count));
                ids.AddRange(Enumerable.Repeat(id, count));
                videoTokens += count;
            }
            else if (id == Model.Config.ImageTokenId)
            {
                if (imageIndex >= request.Images.Count)
                {
                    throw new ArgumentException($"The conversation has more image parts than the {request.Images.Count} images given.", nameof(request));
                }

                var image = request.Images[imageIndex++];
                if (image.dim() != 3 || image.shape[2] != 3)
                {
                    throw new ArgumentException($"Image {imageIndex} must be uint8 [H, W, 3] RGB; got {image.dtype} [{string.Join(", ", image.shape)}].", nameof(request));
                }

                int count = ImagePreprocessor.CountImageTokens((int)image.shape[0], (int)image.shape[1], Model.Config.Vision.PatchesPerSide, Model.Config.VisionAspectRatio);
                ids.AddRange(Enumerable.Repeat(id, count));
                imageTokens += count;
            }
            else
            {
                ids.Add(id);
            }
        }

        if (videoIndex != request.Videos.Count || imageIndex != request.Images.Count)
        {
            throw new ArgumentException(
                $"The conversation has {videoIndex} video and {imageIndex} image parts, but {request.Videos.Count} videos and {request.Images.Count} images were given.", nameof(request));
        }

        return new PromptLayout(ids, videoTokens, imageTokens, spans);
    }

    /// <summary>
    /// Semantic token protection scores for a prompt's embeddings [1, T, D]: each video token's mean dot product with the
    /// embeddings of the text after that video; NaN for every other token.
    /// </summary>
    public static Tensor ImportanceScores(Tensor embeds, IReadOnlyList<(int Start, int Length)> videoSpans)
    {
        ArgumentNullException.ThrowIfNull(embeds);
        ArgumentNullException.ThrowIfNull(videoSpans);
        using var scope = NewDisposeScope();
        long t = embeds.shape[1];
        var scores = full(t, Scalars.NaN, ScalarType.Float32, embeds.device);
        foreach (var (start, length) in videoSpans)
        {
            long after = start + length;
            if (after >= t)
            {
                continue;
            }

            var visual = embeds.narrow(1, start, length);
            var text = embeds.narrow(1, after, t - after);
            scores.narrow(0, start, length).copy_(SemanticTokenProtection.Score(visual, text)[0]);
        }

        return scores.MoveToOuterDisposeScope();
    }

    /// <inheritdoc />
    public void Dispose() => Model.Dispose();

    private IEnumerable<GenerationUpdate> GenerateCore(ChatRequest request, GenerationOptions options, KVCacheOptions cacheOptions, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        var layout = Layout(request);
        int limit = Model.Config.Text.MaxPositionEmbeddings;
        if (layout.Ids.Count + options.MaxNewTokens > limit)
        {
            throw new ArgumentException(
                $"The prompt is {layout.Ids.Count} tokens ({layout.VideoTokens} of video, {layout.ImageTokens} of images) and {options.MaxNewTokens} new tokens were asked for; the model's context is {limit} tokens. Use fewer frames or a smaller MaxNewTokens.");
        }

        using var cache = Model.CreateCache(cacheOptions);
        CacheCreated?.Invoke(cache);
        using var sampler = new TokenSampler(options);
        var decoder = Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);
        var stops = new StopSequenceMatcher(options.StopSequences);
        int next = Prefill(request, layout, cache, sampler, cacheOptions);
        int produced = 0;
        long position = layout.Ids.Count;
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (options.StopAtEndOfTurn && _endOfTurn.Contains(next))
            {
                yield return Final(stops.Push(decoder.Flush()) + stops.Flush(), null, FinishReason.EndOfTurn);
                yield break;
            }

            produced++;
            string text = stops.Push(decoder.Push(next));
            if (stops.Stopped)
            {
                yield return Final(text, next, FinishReason.StopSequence);
                yield break;
            }

            if (produced >= options.MaxNewTokens)
            {
                yield return Final(text + stops.Push(decoder.Flush()) + stops.Flush(), next, FinishReason.Length);
                yield break;
            }

            yield return new GenerationUpdate(text, next);
            cancellationToken.ThrowIfCancellationRequested();
            next = Step(next, position++, cache, sampler);
        }

        GenerationUpdate Final(string text, int? token, FinishReason reason)
            => new(text, token, reason, new GenerationUsage(layout.Ids.Count, layout.VideoTokens, layout.ImageTokens, produced, cache.Memory));
    }

    private int Prefill(ChatRequest request, PromptLayout layout, ModelKVCache cache, TokenSampler sampler, KVCacheOptions cacheOptions)
    {
        using var scope = NewDisposeScope();
        var ids = tensor(layout.Ids.Select(i => (long)i).ToArray()).reshape(1, -1);
        Tensor? videoFeatures = null, imageFeatures = null;
        if (request.Videos.Count > 0)
        {
            videoFeatures = cat(request.Videos.Select(v => Model.EncodeVideo(IsPreprocessed(v) ? v : VideoPreprocessor.Preprocess(v))).ToList(), 0);
        }

        if (request.Images.Count > 0)
        {
            imageFeatures = cat(request.Images.Select(i =>
            {
                using var tiles = ImagePreprocessor.Preprocess(i);
                return Model.EncodeImage(tiles.PixelValues, tiles.OriginalHeight, tiles.OriginalWidth);
            }).ToList(), 0);
        }

        var embeds = Model.MergeVisual(ids, Model.Embed(ids), videoFeatures, imageFeatures);
        var importance = cacheOptions.Values == ValueQuantization.Protected ? ImportanceScores(embeds, layout.VideoSpans) : null;
        var hidden = Model.Forward(embeds, 0, cache, importance);
        return sampler.Next(Model.Logits(hidden.select(1, -1))[0]);
    }

    private int Step(int token, long position, ModelKVCache cache, TokenSampler sampler)
    {
        using var scope = NewDisposeScope();
        var embeds = Model.Embed(tensor(new long[] { token }).reshape(1, 1));
        var hidden = Model.Forward(embeds, position, cache);
        return sampler.Next(Model.Logits(hidden.select(1, -1))[0]);
    }

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
