using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Backend.Models.Siglip;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.LlavaOnevision;

/// <summary>
/// LLaVA-OneVision (SigLIP vision tower, 2-layer projector, Qwen2 decoder) in TorchSharp, loaded from a Hugging Face
/// checkpoint folder. Attention layers keep their keys and values in a <see cref="ModelKVCache"/>.
/// </summary>
/// <remarks>
/// Not thread-safe: TorchSharp dispose scopes belong to one thread, so run one request at a time on one thread.
/// Results are returned in the caller's dispose scope. Dispose the model to free its weights.
/// </remarks>
public sealed class LlavaOnevisionModel : nn.Module, VidKV.AI.Backend.Batching.IBatchedDecoder
{
    // Tensors of checkpoints that this model does not use: SigLIP's pooling head.
    private static readonly string[] UnusedPrefixes = { "vision_tower.head." };

    private readonly Qwen2Decoder language_model;
    private readonly SiglipVisionTower vision_tower;
    private readonly Projector multi_modal_projector;
    private readonly Parameter image_newline;
    private readonly LinearLayer? lm_head;

    private LlavaOnevisionModel(LlavaOnevisionConfig config, ScalarType dtype, Device device, bool separateHead)
        : base(nameof(LlavaOnevisionModel))
    {
        Config = config;
        DType = dtype;
        Device = device;
        language_model = new Qwen2Decoder(config.Text, dtype, device);
        vision_tower = new SiglipVisionTower(config.Vision, dtype, device);
        multi_modal_projector = new Projector(config.Vision.HiddenSize, config.Text.HiddenSize, config.ProjectorBias, dtype, device);
        image_newline = new Parameter(empty(new long[] { config.Text.HiddenSize }, dtype, device), requires_grad: false);
        register_module(nameof(language_model), language_model);
        register_module(nameof(vision_tower), vision_tower);
        register_module(nameof(multi_modal_projector), multi_modal_projector);
        register_parameter(nameof(image_newline), image_newline);
        if (separateHead)
        {
            lm_head = new LinearLayer(config.Text.HiddenSize, config.Text.VocabSize, false, dtype, device);
            register_module(nameof(lm_head), lm_head);
        }
    }

    /// <summary>The checkpoint's configuration.</summary>
    public LlavaOnevisionConfig Config { get; }

    /// <summary>Computation type.</summary>
    public ScalarType DType { get; }

    /// <summary>Device holding the weights.</summary>
    public Device Device { get; }

    /// <summary>Whether the output projection is the input embedding (tied) rather than a separate lm_head.</summary>
    public bool TiedEmbeddings => lm_head is null;

    /// <summary>
    /// Loads a checkpoint folder (config.json and model.safetensors or sharded safetensors with an index). Key names may be
    /// the Hub's (<c>language_model.model.*</c>, <c>vision_tower.vision_model.*</c>), transformers 5's (<c>vision_tower.*</c>)
    /// or the module names (<c>model.language_model.*</c>). Every tensor's shape is checked; types are converted.
    /// </summary>
    /// <exception cref="FileNotFoundException">config.json or the weights are missing.</exception>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected or has the wrong shape; the message names it.</exception>
    public static LlavaOnevisionModel Load(string directory, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options = CheckpointWeights.CheckOptions(options);
        var config = LlavaOnevisionConfig.Load(directory);
        using var weights = CheckpointWeights.Open(directory, CanonicalName);

        // Every parameter is checked against the tensor headers before anything is allocated, so the sizes allocated are
        // those of tensors that exist in the files: a config.json whose numbers disagree with the weights fails here.
        bool separateHead = weights.SeparateHead(config.Text.TieWordEmbeddings);
        weights.Check(ParameterShapes(config, tiedEmbeddings: !separateHead).Select(p => (p.Name, (long[]?)p.Shape)), "the Hub's, transformers 5's and the module names", "LLaVA-OneVision", UnusedPrefixes);
        var model = new LlavaOnevisionModel(config, options.DType, options.Device ?? CPU, separateHead);
        try
        {
            weights.CopyInto(model);
        }
        catch
        {
            model.Dispose();
            throw;
        }

        return model;
    }

    /// <summary>
    /// A new model with random weights (normal(0, 0.02) matrices and embeddings, unit norm weights, zero biases),
    /// reproducible from <paramref name="seed"/>, for training. With <paramref name="drawOnDevice"/> the random numbers
    /// are drawn by the model's device (seconds instead of minutes for a 7B model on a GPU; other values than CPU draws).
    /// </summary>
    public static LlavaOnevisionModel Create(LlavaOnevisionConfig config, ModelLoadOptions? options, long seed, bool drawOnDevice = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate("the configuration given to Create");
        options ??= new ModelLoadOptions();
        var model = new LlavaOnevisionModel(config, options.DType, options.Device ?? CPU, separateHead: !config.Text.TieWordEmbeddings);
        using var noGrad = torch.no_grad();
        var drawDevice = drawOnDevice ? options.Device ?? CPU : CPU;

        // TorchSharp's Generator is a CPU one; device draws use the device's default generator, seeded here.
        Generator? generator = drawDevice.type == DeviceType.CPU ? new Generator((ulong)seed) : null;
        if (generator is null)
        {
            torch.cuda.manual_seed_all(seed);
        }
        foreach (var (name, p) in model.named_parameters())
        {
            using var scope = NewDisposeScope();
            bool isNorm = name.Contains("norm", StringComparison.Ordinal);
            Tensor init = name.EndsWith("bias", StringComparison.Ordinal) ? zeros(p.shape)
                : isNorm ? ones(p.shape)
                : name == "image_newline" ? randn(p.shape, generator: generator, device: drawDevice) / Math.Sqrt(p.shape[0])
                : randn(p.shape, generator: generator, device: drawDevice) * 0.02;
            p.copy_(init);
        }

        generator?.Dispose();
        return model;
    }

    /// <summary>Makes every parameter trainable (or frozen again).</summary>
    public void SetTrainable(bool trainable)
    {
        foreach (var (_, p) in named_parameters())
        {
            p.requires_grad = trainable;
        }
    }

    /// <summary>
    /// Writes the weights as <c>model.safetensors</c> (the names transformers' save_pretrained writes) and
    /// <c>config.json</c> into <paramref name="directory"/>, optionally converted to <paramref name="dtype"/>.
    /// </summary>
    public void Save(string directory, ScalarType? dtype = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        System.IO.Directory.CreateDirectory(directory);
        using var scope = NewDisposeScope();
        var tensors = named_parameters()
            .Select(p => (Name: StoredName(p.name), Tensor: dtype is { } t ? p.parameter.detach().to(t) : p.parameter.detach()))
            .ToList();
        SafetensorsWriter.Write(Path.Combine(directory, "model.safetensors"), tensors, new Dictionary<string, string> { ["format"] = "pt" });
        File.WriteAllText(Path.Combine(directory, "config.json"), (Config with { CheckpointDType = dtype ?? DType }).ToJson());
    }

    /// <summary>The name save_pretrained gives a parameter (language_model.model.*, lm_head, vision_tower.*).</summary>
    internal static string StoredName(string canonical)
        => canonical.StartsWith("language_model.", StringComparison.Ordinal) ? "language_model.model." + canonical["language_model.".Length..] : canonical;

    /// <summary>
    /// The parameter names and shapes a checkpoint must provide for <paramref name="config"/> (Hub naming rules apart):
    /// the model is built on the meta device (shapes without storage), so this allocates no weights whatever the config says.
    /// </summary>
    public static IReadOnlyList<(string Name, long[] Shape)> ParameterShapes(LlavaOnevisionConfig config, bool tiedEmbeddings)
    {
        ArgumentNullException.ThrowIfNull(config);
        using var model = new LlavaOnevisionModel(config, ScalarType.BFloat16, new Device(DeviceType.META), separateHead: !tiedEmbeddings);
        return model.named_parameters().Select(p => (p.name, p.parameter.shape)).ToList();
    }

    /// <summary>Maps a stored tensor name to this model's parameter name.</summary>
    internal static string CanonicalName(string stored)
    {
        string n = stored;
        foreach (var inner in new[] { "language_model.", "vision_tower.", "multi_modal_projector.", "image_newline", "lm_head." })
        {
            if (n.StartsWith("model." + inner, StringComparison.Ordinal))
            {
                n = n["model.".Length..];
                break;
            }
        }

        if (n.StartsWith("language_model.model.", StringComparison.Ordinal))
        {
            return "language_model." + n["language_model.model.".Length..];
        }

        if (n.StartsWith("language_model.lm_head.", StringComparison.Ordinal))
        {
            return "lm_head." + n["language_model.lm_head.".Length..];
        }

        if (n.StartsWith("vision_tower.vision_model.", StringComparison.Ordinal))
        {
            return "vision_tower." + n["vision_tower.vision_model.".Length..];
        }

        return n;
    }

    /// <summary>Token embeddings [B, T, D] for ids [B, T].</summary>
    public Tensor Embed(Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return language_model.Embeddings.forward(ids.to(Device));
    }

    /// <summary>
    /// The vision tower's selected features for pixels [N, C, S, S]: hidden state <c>vision_feature_layer</c>, before the
    /// post-layernorm, minus the first position with the "default" strategy. [N, P, Dv].
    /// </summary>
    public Tensor VisionFeatures(Tensor pixels)
    {
        CheckPixels(pixels);
        using var scope = NewDisposeScope();
        var input = pixels.to(Device).to(DType);

        // On the CPU, a few frames at a time: each of the tower's activations then stays under 24 MiB, which glibc serves
        // from memory the thread already has instead of fresh mappings (see NativeHeap). The frames do not interact in the
        // tower, so the result is the same (and cat keeps gradients).
        long perFrame = (long)(Config.Vision.PatchesPerSide * Config.Vision.PatchesPerSide + 1) * Config.Vision.HiddenSize * input.element_size();
        long framesPerPass = Math.Max(1, InPlace.ChunkBytes / perFrame), frames = input.shape[0];
        Tensor h;
        if (input.device_type != DeviceType.CPU || frames <= framesPerPass)
        {
            h = vision_tower.HiddenState(input, Config.VisionFeatureLayer);
        }
        else
        {
            long passes = (frames + framesPerPass - 1) / framesPerPass, size = (frames + passes - 1) / passes;
            var parts = new List<Tensor>();
            for (long start = 0; start < frames; start += size)
            {
                parts.Add(vision_tower.HiddenState(input.narrow(0, start, Math.Min(size, frames - start)), Config.VisionFeatureLayer));
            }

            h = cat(parts, 0);
        }

        if (Config.VisionFeatureSelectStrategy == "default")
        {
            h = h.narrow(1, 1, h.shape[1] - 1);
        }

        return h.MoveToOuterDisposeScope();
    }

    /// <summary>Projects vision features [.., Dv] into the decoder's embedding space [.., D].</summary>
    public Tensor Project(Tensor visionFeatures) => multi_modal_projector.forward(visionFeatures);

    /// <summary>
    /// A video's features for its frames [F, C, S, S]: vision tower, projector, 2x bilinear pooling to ceil(p/2)² tokens per
    /// frame, then one newline embedding: [F·ceil(p/2)² + 1, D].
    /// </summary>
    public Tensor EncodeVideo(Tensor frames) => EncodeVideos(new[] { frames })[0];

    /// <summary>
    /// <see cref="EncodeVideo"/> for several videos, running the vision tower once over all their frames.
    /// </summary>
    public IReadOnlyList<Tensor> EncodeVideos(IReadOnlyList<Tensor> videos)
    {
        ArgumentNullException.ThrowIfNull(videos);
        using var scope = NewDisposeScope();
        var pooled = Pool(Project(VisionFeatures(videos.Count == 1 ? videos[0] : cat(videos.ToList(), 0))));
        var result = new List<Tensor>(videos.Count);
        long start = 0;
        foreach (var video in videos)
        {
            long frames = video.shape[0];
            var features = pooled.narrow(0, start, frames);
            result.Add(cat(new[] { features.reshape(-1, features.shape[^1]), image_newline.unsqueeze(0) }, 0).MoveToOuterDisposeScope());
            start += frames;
        }

        return result;
    }

    /// <summary>
    /// Several videos' features at once, for training: their frames concatenated [ΣF, C, S, S] go through the vision tower,
    /// projector and pooling once. Returns the pooled frame tokens [ΣF, t, D] (t = ceil(p/2)²) and the rows the videos
    /// contribute to their prompts, in order: each video's frame tokens then the newline feature [Σ(F·t + 1), D].
    /// </summary>
    /// <exception cref="ArgumentException">The frame counts are not positive or do not add up to the frames given.</exception>
    public (Tensor Pooled, Tensor Rows) EncodeVideoBatch(Tensor frames, IReadOnlyList<int> framesPerVideo)
    {
        ArgumentNullException.ThrowIfNull(frames);
        ArgumentNullException.ThrowIfNull(framesPerVideo);
        if (framesPerVideo.Count == 0 || framesPerVideo.Any(f => f <= 0) || framesPerVideo.Sum() != frames.shape[0])
        {
            throw new ArgumentException(
                $"framesPerVideo ({string.Join(", ", framesPerVideo)}) must be positive counts adding up to the {frames.shape[0]} frames given.", nameof(framesPerVideo));
        }

        using var scope = NewDisposeScope();
        var pooled = Pool(Project(VisionFeatures(frames)));
        long t = pooled.shape[1], d = pooled.shape[2];
        long newline = pooled.shape[0] * t;
        var index = new List<long>(checked((int)newline + framesPerVideo.Count));
        long start = 0;
        foreach (int f in framesPerVideo)
        {
            for (long i = 0; i < f * t; i++)
            {
                index.Add(start + i);
            }

            index.Add(newline);
            start += f * t;
        }

        var table = cat(new[] { pooled.reshape(-1, d), image_newline.unsqueeze(0) }, 0);
        var rows = table.index_select(0, tensor(index.ToArray(), device: Device));
        return (pooled.MoveToOuterDisposeScope(), rows.MoveToOuterDisposeScope());
    }

    /// <summary>
    /// An image's features for its anyres tiles [P, C, S, S] (the whole image first, then the tiles of the best grid) and
    /// its original size: the tiles' features are laid out as one map, the padding is cut away, the map is shrunk when it
    /// exceeds anyres_max_N tiles, a newline feature ends each row, and the whole image's features come first.
    /// </summary>
    public Tensor EncodeImage(Tensor tiles, int height, int width)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(height);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(width);
        using var scope = NewDisposeScope();
        var features = Project(VisionFeatures(tiles)); // [P, p², D]
        long d = features.shape[2];
        var baseFeatures = features[0];
        if (features.shape[0] == 1)
        {
            return cat(new[] { baseFeatures, image_newline.unsqueeze(0) }, 0).MoveToOuterDisposeScope();
        }

        int p = Config.Vision.PatchesPerSide;
        var (rows, columns) = Vision.AnyResGeometry.GetGridShape(height, width, Config.ImageGridPinpoints, Config.Vision.ImageSize);
        if (rows * columns != features.shape[0] - 1)
        {
            throw new ArgumentException($"A {height}x{width} image is cut into {rows}x{columns} tiles plus the whole image, but {features.shape[0]} tiles were given.", nameof(tiles));
        }

        // [rows, cols, p, p, D] -> [D, rows·p, cols·p]
        var map = features.narrow(0, 1, rows * columns).view(rows, columns, p, p, d).permute(4, 0, 2, 1, 3).contiguous().flatten(1, 2).flatten(2, 3);
        var (top, left, h, w) = Vision.AnyResGeometry.GetUnpadRegion(rows * p, columns * p, height, width);
        map = map.narrow(1, top, h).narrow(2, left, w);
        var (nh, nw) = Vision.AnyResGeometry.GetAnyResMaxSize(h, w, p, Vision.AnyResGeometry.ParseMaxNumPatches(Config.VisionAspectRatio));
        if ((nh, nw) != (h, w))
        {
            map = nn.functional.interpolate(map.unsqueeze(0), new long[] { nh, nw }, null, InterpolationMode.Bilinear, false)[0];
        }

        var withNewlines = cat(new[] { map, image_newline.view(d, 1, 1).expand(d, nh, 1) }, -1);
        var packed = withNewlines.flatten(1, 2).transpose(0, 1);
        return cat(new[] { baseFeatures, packed }, 0).MoveToOuterDisposeScope();
    }

    /// <summary>2x bilinear pooling of projected frame features [F, p², D] to [F, ceil(p/2)², D].</summary>
    public Tensor Pool(Tensor features)
    {
        using var scope = NewDisposeScope();
        long f = features.shape[0], d = features.shape[2];
        long side = (long)Math.Round(Math.Sqrt(features.shape[1]));
        if (side * side != features.shape[1])
        {
            throw new ArgumentException($"Frame features have {features.shape[1]} positions, not a square grid.", nameof(features));
        }

        long scaled = (side + 1) / 2;
        // Left channels-last (the permuted view is channels-last contiguous): PyTorch's CUDA kernel for NCHW-contiguous
        // input runs one thread per output position looping over every frame and channel (about 300 ms for 3,000 frames
        // of 16 outputs on an H200), while the channels-last kernel spreads all output elements over threads.
        var grid = features.view(f, side, side, d).permute(0, 3, 1, 2);
        var pooled = nn.functional.interpolate(grid, new[] { scaled, scaled }, null, InterpolationMode.Bilinear, false);
        return pooled.permute(0, 2, 3, 1).reshape(f, scaled * scaled, d).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Replaces the embeddings of <c>&lt;video&gt;</c> and <c>&lt;image&gt;</c> placeholders in <paramref name="embeds"/> [1, T, D]
    /// with visual features, in order. The number of placeholders must equal the number of feature rows.
    /// </summary>
    /// <exception cref="ArgumentException">Counts differ; the message gives both.</exception>
    public Tensor MergeVisual(Tensor ids, Tensor embeds, Tensor? videoFeatures, Tensor? imageFeatures)
        => VisualEmbeddings.Merge(ids, embeds, Device, (Config.VideoTokenId, videoFeatures, "<video>"), (Config.ImageTokenId, imageFeatures, "<image>"));

    /// <summary>
    /// Runs the decoder over <see cref="DecoderInput.Embeddings"/> [B, T, D] and returns the final-normed hidden states
    /// [B, T, D]. Positions default to consecutive ones from the cache's length; with a cache, keys and values are kept in it
    /// (an empty cache is filled by this prefill, else the inputs are appended and attend over the whole cache).
    /// </summary>
    /// <exception cref="ArgumentException">The cache has another layer count, the positions are not [T], or a hook replaces
    /// keys and values while a cache is given.</exception>
    public Tensor Forward(DecoderInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var cache = input.Cache;
        if (cache is not null && cache.Layers.Count != Config.Text.NumLayers)
        {
            throw new ArgumentException($"The cache has {cache.Layers.Count} layers; this model has {Config.Text.NumLayers}.", nameof(input));
        }

        long t = input.Embeddings.shape[1];
        if (input.PositionIds is { } given && (given.dim() != 1 || given.shape[0] != t))
        {
            throw new ArgumentException($"Position ids must be [{t}] (one per input); got [{string.Join(", ", given.shape)}].", nameof(input));
        }

        // No dispose scope here: a hook's kept layer outputs move to the scope around the decoder's, the caller's.
        using var consecutive = input.PositionIds is null ? ConsecutivePositions(cache?.Length ?? 0, t, Device) : null;
        var positions = consecutive ?? input.PositionIds!.to(Device);
        return language_model.Forward(input.Embeddings.to(DType), positions, cache?.Layers, input.Importance, input.Hook);
    }

    /// <inheritdoc />
    Tensor VidKV.AI.Backend.Batching.IBatchedDecoder.ForwardDecodeBatch(Tensor embeddings, IReadOnlyList<Tensor?> positionIds, IReadOnlyList<ModelKVCache> caches, bool rowWise)
    {
        ArgumentNullException.ThrowIfNull(embeddings);
        ArgumentNullException.ThrowIfNull(positionIds);
        ArgumentNullException.ThrowIfNull(caches);
        long n = embeddings.shape[0];
        if (embeddings.dim() != 3 || embeddings.shape[1] != 1 || positionIds.Count != n || caches.Count != n)
        {
            throw new ArgumentException(
                $"A batched decode step takes embeddings [N, 1, D] with N position ids and N caches; got [{string.Join(", ", embeddings.shape)}], {positionIds.Count} and {caches.Count}.", nameof(embeddings));
        }

        foreach (var cache in caches)
        {
            if (cache.Layers.Count != Config.Text.NumLayers || cache.Length == 0)
            {
                throw new ArgumentException($"Every cache of a batched decode step must be prefilled and have {Config.Text.NumLayers} layers; one has {cache.Layers.Count} layers and {cache.Length} tokens.", nameof(caches));
            }
        }

        using var scope = NewDisposeScope();
        var positions = new Tensor[n];
        for (int i = 0; i < n; i++)
        {
            positions[i] = positionIds[i]?.to(Device) ?? ConsecutivePositions(caches[i].Length, 1, Device);
        }

        var layers = caches.Select(c => c.Layers).ToArray();
        return language_model.ForwardDecodeBatch(embeddings.to(DType), positions, layers, rowWise).MoveToOuterDisposeScope();
    }

    /// <summary>Positions start..start+count-1 as int64 [count].</summary>
    internal static Tensor ConsecutivePositions(long start, long count, Device device)
    {
        using var first = start.ToScalar();
        using var end = (start + count).ToScalar();
        return arange(first, end, VidKV.AI.Quantization.Scalars.OneInt64, ScalarType.Int64, device);
    }

    /// <summary>Logits [.., V] (float32) for hidden states [.., D].</summary>
    public Tensor Logits(Tensor hidden)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        using var scope = NewDisposeScope();
        var logits = lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden, language_model.Embeddings.Weight);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>A new, empty cache for this model: one compressed cache per decoder layer.</summary>
    public ModelKVCache CreateCache(VidKV.AI.Quantization.Cache.KVCacheOptions options) => new(Config.Text.NumLayers, options);

    private void CheckPixels(Tensor pixels)
    {
        ArgumentNullException.ThrowIfNull(pixels);
        int s = Config.Vision.ImageSize;
        if (pixels.dim() != 4 || pixels.shape[1] != Config.Vision.NumChannels || pixels.shape[2] != s || pixels.shape[3] != s)
        {
            throw new ArgumentException($"Pixels must be [N, {Config.Vision.NumChannels}, {s}, {s}] (preprocessed frames); got [{string.Join(", ", pixels.shape)}].", nameof(pixels));
        }
    }
}
