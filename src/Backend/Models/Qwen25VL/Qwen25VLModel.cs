using TorchSharp;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// Qwen2.5-VL or Qwen2-VL (vision transformer with 2-D rotary positions and a 2x2 merger, Qwen2 decoder with multimodal
/// rotary positions) in TorchSharp, loaded from a Hugging Face checkpoint folder. Attention layers keep their keys and
/// values in a <see cref="ModelKVCache"/>.
/// </summary>
/// <remarks>
/// Not thread-safe: TorchSharp dispose scopes belong to one thread, so run one request at a time on one thread.
/// Results are returned in the caller's dispose scope. Dispose the model to free its weights.
/// </remarks>
public sealed class Qwen25VLModel : nn.Module
{
    private readonly Qwen2Decoder model;
    private readonly QwenVisionTower visual;
    private readonly LinearLayer? lm_head;

    private Qwen25VLModel(Qwen25VLConfig config, ScalarType dtype, Device device, bool separateHead)
        : base(nameof(Qwen25VLModel))
    {
        Config = config;
        DType = dtype;
        Device = device;
        model = new Qwen2Decoder(config.Text, dtype, device);
        visual = new QwenVisionTower(config.Vision, dtype, device);
        register_module(nameof(model), model);
        register_module(nameof(visual), visual);
        if (separateHead)
        {
            lm_head = new LinearLayer(config.Text.HiddenSize, config.Text.VocabSize, false, dtype, device);
            register_module(nameof(lm_head), lm_head);
        }
    }

    /// <summary>The checkpoint's configuration.</summary>
    public Qwen25VLConfig Config { get; }

    /// <summary>Computation type.</summary>
    public ScalarType DType { get; }

    /// <summary>Device holding the weights.</summary>
    public Device Device { get; }

    /// <summary>Whether the output projection is the input embedding (tied) rather than a separate lm_head.</summary>
    public bool TiedEmbeddings => lm_head is null;

    /// <summary>
    /// Loads a checkpoint folder (config.json and model.safetensors, or shards with an index). Key names may be the Hub's
    /// (<c>model.layers.*</c>, <c>visual.*</c>, <c>lm_head.weight</c>), which transformers 5 also writes, or the module names
    /// (<c>model.language_model.*</c>, <c>model.visual.*</c>). Every tensor's shape is checked; types are converted.
    /// </summary>
    /// <exception cref="FileNotFoundException">config.json or the weights are missing.</exception>
    /// <exception cref="InvalidDataException">A tensor is missing, unexpected or has the wrong shape; the message names it.</exception>
    public static Qwen25VLModel Load(string directory, ModelLoadOptions? options = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        options = CheckpointWeights.CheckOptions(options);
        var config = Qwen25VLConfig.Load(directory);
        using var weights = CheckpointWeights.Open(directory, CanonicalName);

        // Checked against the tensor headers before anything is allocated (the model built on the meta device gives the
        // shapes): a config.json whose numbers disagree with the weights fails here.
        bool separateHead = weights.SeparateHead(config.Text.TieWordEmbeddings);
        using (var shapes = new Qwen25VLModel(config, ScalarType.BFloat16, new Device(DeviceType.META), separateHead))
        {
            weights.Check(shapes.named_parameters().Select(p => (p.name, (long[]?)p.parameter.shape)).ToList(), "the Hub's and transformers 5's names", config.ModelType);
        }

        var result = new Qwen25VLModel(config, options.DType, options.Device ?? CPU, separateHead);
        try
        {
            weights.CopyInto(result);
        }
        catch
        {
            result.Dispose();
            throw;
        }

        return result;
    }

    /// <summary>Maps a stored tensor name to this model's parameter name (model.*, visual.*, lm_head.*).</summary>
    internal static string CanonicalName(string stored)
    {
        if (stored.StartsWith("model.language_model.", StringComparison.Ordinal))
        {
            return "model." + stored["model.language_model.".Length..];
        }

        if (stored.StartsWith("model.visual.", StringComparison.Ordinal))
        {
            return stored["model.".Length..];
        }

        return stored;
    }

    /// <summary>Token embeddings [B, T, D] for ids [B, T].</summary>
    public Tensor Embed(Tensor ids)
    {
        ArgumentNullException.ThrowIfNull(ids);
        return model.Embeddings.forward(ids.to(Device));
    }

    /// <summary>
    /// Visual features [Σ tokens, D] of the patches [Σ patches, C·T·P·P] of <paramref name="grids"/> (images' and videos'
    /// grids, as the processor lays them out), in order. <paramref name="blockOutputs"/> receives each vision block's output.
    /// </summary>
    /// <exception cref="ArgumentException">The patches do not fit the grids.</exception>
    public Tensor EncodeVisual(Tensor patches, IReadOnlyList<VisionGrid> grids, List<Tensor>? blockOutputs = null)
    {
        ArgumentNullException.ThrowIfNull(patches);
        ArgumentNullException.ThrowIfNull(grids);
        return visual.Forward(patches.to(DType), grids, blockOutputs);
    }

    /// <summary>
    /// Replaces the embeddings of <c>&lt;|video_pad|&gt;</c> and <c>&lt;|image_pad|&gt;</c> tokens in <paramref name="embeds"/>
    /// [1, T, D] with visual features, in order. The number of placeholders must equal the number of feature rows.
    /// </summary>
    /// <exception cref="ArgumentException">Counts differ; the message gives both.</exception>
    public Tensor MergeVisual(Tensor ids, Tensor embeds, Tensor? videoFeatures, Tensor? imageFeatures)
        => VisualEmbeddings.Merge(ids, embeds, Device, (Config.VideoTokenId, videoFeatures, "<|video_pad|>"), (Config.ImageTokenId, imageFeatures, "<|image_pad|>"));

    /// <summary>
    /// Runs the decoder over <see cref="DecoderInput.Embeddings"/> [B, T, D] and returns the final-normed hidden states.
    /// Positions are [3, T] (temporal, height, width), or [T] for text-only positions (all three equal); by default
    /// consecutive ones from the cache's length. With a cache, keys and values are kept in it.
    /// </summary>
    /// <exception cref="ArgumentException">The cache has another layer count or the positions are not [3, T] or [T].</exception>
    public Tensor Forward(DecoderInput input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var cache = input.Cache;
        if (cache is not null && cache.Layers.Count != Config.Text.NumLayers)
        {
            throw new ArgumentException($"The cache has {cache.Layers.Count} layers; this model has {Config.Text.NumLayers}.", nameof(input));
        }

        long t = input.Embeddings.shape[1];
        var rotary = RotaryFor(input.PositionIds, cache?.Length ?? 0, t);
        try
        {
            // No dispose scope here: a hook's kept layer outputs move to the scope around the decoder's, the caller's.
            return model.Forward(input.Embeddings.to(DType), rotary, cache?.Layers, input.Importance, input.Hook);
        }
        finally
        {
            rotary.Cos.Dispose();
            rotary.Sin.Dispose();
        }
    }

    private RotaryTables RotaryFor(Tensor? given, long start, long t)
    {
        using var scope = NewDisposeScope();
        Tensor positions;
        if (given is not null)
        {
            positions = given.dim() switch
            {
                2 when given.shape[0] == 3 && given.shape[1] == t => given.to(Device),
                1 when given.shape[0] == t => given.to(Device).unsqueeze(0).expand(3, t),
                _ => throw new ArgumentException($"Position ids must be [3, {t}] or [{t}]; got [{string.Join(", ", given.shape)}].", "input"),
            };
        }
        else
        {
            using var first = start.ToScalar();
            using var end = (start + t).ToScalar();
            positions = arange(first, end, VidKV.AI.Quantization.Scalars.OneInt64, ScalarType.Int64, Device).unsqueeze(0).expand(3, t);
        }

        var rotary = MultimodalRotaryEmbedding.Tables(positions, Config.MropeSection, Config.Text.HeadDim, Config.Text.RopeTheta);
        return new RotaryTables(rotary.Cos.MoveToOuterDisposeScope(), rotary.Sin.MoveToOuterDisposeScope());
    }

    /// <summary>Logits [.., V] (float32) for hidden states [.., D].</summary>
    public Tensor Logits(Tensor hidden)
    {
        ArgumentNullException.ThrowIfNull(hidden);
        using var scope = NewDisposeScope();
        var logits = lm_head is not null ? lm_head.forward(hidden) : nn.functional.linear(hidden, model.Embeddings.Weight);
        return logits.to(ScalarType.Float32).MoveToOuterDisposeScope();
    }

    /// <summary>A new, empty cache for this model: one compressed cache per decoder layer.</summary>
    public ModelKVCache CreateCache(KVCacheOptions options) => new(Config.Text.NumLayers, options);

    /// <summary>The 3-D position ids [3, T] of a prompt and the position of the token after it.</summary>
    /// <exception cref="ArgumentException">The placeholders do not match the visual inputs.</exception>
    public (Tensor Positions, long Next) PositionIds(IReadOnlyList<int> ids, IReadOnlyList<VisualInput> visuals)
        => MultimodalPositions.Compute(ids, Config, visuals);
}
