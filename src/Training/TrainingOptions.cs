using VidKV.AI.Training.Synthetic;
using static TorchSharp.torch;

namespace VidKV.AI.Training;

/// <summary>Settings of a training run on the synthetic video QA task.</summary>
public sealed record TrainingOptions
{
    /// <summary>Optimizer steps. Default 3000.</summary>
    public int Steps { get; init; } = 3000;

    /// <summary>Samples per step (gradients accumulated). Default 16.</summary>
    public int BatchSize { get; init; } = 16;

    /// <summary>Peak learning rate of AdamW (linear warm-up, cosine decay). Default 1e-3.</summary>
    public double LearningRate { get; init; } = 1e-3;

    /// <summary>Warm-up steps. Default 100.</summary>
    public int WarmupSteps { get; init; } = 100;

    /// <summary>Weight decay. Default 0.01.</summary>
    public double WeightDecay { get; init; } = 0.01;

    /// <summary>
    /// Seed of the model's initialization (without <see cref="InitialModel"/>), the auxiliary heads' initialization and
    /// the choice of batch groups that read the quantized cache. The training videos do not depend on it: step s of every
    /// run sees the videos of <see cref="SyntheticTrainer.SyntheticSeed"/>(s, i).
    /// </summary>
    public int Seed { get; init; }

    /// <summary>Longest training video in frames. Default 64.</summary>
    public int MaxVideoFrames { get; init; } = 64;

    /// <summary>
    /// Weight of the auxiliary visual objective (colour, shape, size and position of the object in each pooled video
    /// token) against the answer loss; 0 turns it off. Default 1.
    /// </summary>
    public double VisualLossWeight { get; init; } = 1.0;

    /// <summary>
    /// Weight of the decoder's motion objective: a small head reads a decoder hidden state (<see cref="MotionLayer"/>) at
    /// every pooled video token and names the motion of the object in it (<see cref="VisualTargets.Motion"/>), so the decoder learns to
    /// compare an object's place with where it was in earlier frames; 0 (default) turns it off.
    /// </summary>
    public double MotionLossWeight { get; init; }

    /// <summary>
    /// The decoder layer (1 to the model's layer count) whose output the motion objective reads; <see langword="null"/>
    /// (default) for the final, normed hidden state. An earlier layer leaves the layers above it to carry the motion
    /// found at the object's tokens on to the question that asks for it.
    /// </summary>
    public int? MotionLayer { get; init; }

    /// <summary>
    /// The KV cache preset (<see cref="VidKV.AI.Quantization.Cache.KVCacheOptions.PresetNames"/>, quantized) put in the
    /// training loop for <see cref="QuantizedCacheShare"/> of the batch groups: there every decoder layer attends to its
    /// keys and values as that cache gives them back (Reference and Compact profiles alternately chosen at random), with
    /// gradients passed straight through, so the model learns to answer from a compressed cache too. Default vidkv-1.5/1.58.
    /// </summary>
    public string QuantizedCachePreset { get; init; } = "vidkv-1.5/1.58";

    /// <summary>
    /// Whether the cache in the loop stores and applies a per-group scale with its ternary values
    /// (<see cref="VidKV.AI.Quantization.Cache.KVCacheOptions.ScaledTernary"/>); for presets with ternary values only.
    /// Default false (bare trits, as the presets read them back).
    /// </summary>
    public bool QuantizedCacheScaledTernary { get; init; }

    /// <summary>Share of batch groups trained through <see cref="QuantizedCachePreset"/>, 0 (default: none) to 1.</summary>
    public double QuantizedCacheShare { get; init; }

    /// <summary>
    /// Which queries read the cache's keys and values in those groups: every one (default); as in generation, only the
    /// answers'; or, as when a question is answered from a remembered (reused) video, every query after the video.
    /// </summary>
    public CacheQueries QuantizedCacheQueries { get; init; } = CacheQueries.All;

    /// <summary>Where the auxiliary visual objective places each token's object: in its cell (default) or in the frame.</summary>
    public PositionTarget Position { get; init; } = PositionTarget.InCell;

    /// <summary>
    /// Share of training questions asked before the video (the rest after it), 0 to 1. With 0.5 the model learns
    /// both orders. Validation asks question-first when this is at least 0.5. Default 0 (the video first, as LLaVA-OneVision is trained).
    /// </summary>
    public double QuestionFirst { get; init; }

    /// <summary>
    /// Questions asked about each training video: the sample's own, then up to this many minus one more that its scene
    /// answers (<see cref="SceneQuestions"/>), as later turns of the same conversation, so that one encoding of the video
    /// teaches several answers. Default 1.
    /// </summary>
    public int QuestionsPerVideo { get; init; } = 1;

    /// <summary>The question families trained on and their weights. Default: every family equally.</summary>
    public FamilyMix Families { get; init; } = FamilyMix.Balanced;

    /// <summary>A checkpoint folder to continue training from (its tokenizer is kept); <see langword="null"/> for a new model.</summary>
    public string? InitialModel { get; init; }

    /// <summary>Device; <see langword="null"/> for the CPU.</summary>
    public Device? Device { get; init; }

    /// <summary>Validation samples scored every <see cref="EvaluateEvery"/> steps. Default 200.</summary>
    public int ValidationSamples { get; init; } = 200;

    /// <summary>Steps between validations (0: never). Default 500.</summary>
    public int EvaluateEvery { get; init; } = 500;

    /// <summary>
    /// Wall-clock budget; <see langword="null"/> for none. With a budget, training ends at whichever comes first, the
    /// budget or <see cref="Steps"/>, and the learning-rate schedule follows the larger of the two fractions done.
    /// </summary>
    public TimeSpan? MaxDuration { get; init; }

    /// <summary>
    /// Times the parts of each step (waiting for the batch, forward, backward, optimizer) by waiting for the device after
    /// each, and logs their means with the losses. Slows training a little; for finding what limits its speed.
    /// </summary>
    public bool Profile { get; init; }

    /// <summary>Checks every value.</summary>
    /// <exception cref="ArgumentException">A value is not allowed; the message names it.</exception>
    public void Validate()
    {
        if (Steps < 1 || BatchSize < 1 || QuestionsPerVideo < 1 || WarmupSteps < 0 || MaxVideoFrames < 8 || ValidationSamples < 1 || EvaluateEvery < 0)
        {
            throw new ArgumentException($"Invalid training options: {this}. Steps, BatchSize, QuestionsPerVideo and ValidationSamples must be positive, MaxVideoFrames at least 8.");
        }

        if (!(LearningRate > 0) || !(WeightDecay >= 0) || !(VisualLossWeight >= 0) || !(MotionLossWeight >= 0) || !(QuestionFirst is >= 0 and <= 1))
        {
            throw new ArgumentException($"LearningRate ({LearningRate}) must be positive, WeightDecay ({WeightDecay}), VisualLossWeight ({VisualLossWeight}) and MotionLossWeight ({MotionLossWeight}) not negative, QuestionFirst ({QuestionFirst}) 0 to 1.");
        }

        if (!(QuantizedCacheShare is >= 0 and <= 1))
        {
            throw new ArgumentException($"QuantizedCacheShare ({QuantizedCacheShare}) must be 0 to 1.");
        }

        if (!Enum.IsDefined(QuantizedCacheQueries))
        {
            throw new ArgumentException($"QuantizedCacheQueries ({QuantizedCacheQueries}) must be All, Answers, AfterVideo or AnswersOrAfterVideo.");
        }

        if (QuantizedCacheShare > 0 && !VidKV.AI.Quantization.Cache.KVCacheOptions.FromPreset(QuantizedCachePreset).IsQuantized)
        {
            throw new ArgumentException($"QuantizedCachePreset '{QuantizedCachePreset}' does not quantize; allowed: a quantized preset of {string.Join(", ", VidKV.AI.Quantization.Cache.KVCacheOptions.PresetNames)}.");
        }

        if (QuantizedCacheScaledTernary && VidKV.AI.Quantization.Cache.KVCacheOptions.FromPreset(QuantizedCachePreset).Values is not (VidKV.AI.Quantization.Cache.ValueQuantization.Ternary or VidKV.AI.Quantization.Cache.ValueQuantization.Protected))
        {
            throw new ArgumentException($"QuantizedCacheScaledTernary needs a preset with ternary values; QuantizedCachePreset '{QuantizedCachePreset}' has none (allowed: the vidkv-x/1.58 and vidkv-x/1.66 presets).");
        }

        if (MotionLayer is < 1)
        {
            throw new ArgumentException($"MotionLayer ({MotionLayer}) must be a decoder layer, 1 or more (the model's layer count at most).");
        }

        if (InitialModel is not null && !File.Exists(Path.Combine(InitialModel, "config.json")))
        {
            throw new ArgumentException($"InitialModel '{InitialModel}' is not a checkpoint folder (no config.json).");
        }
    }
}

/// <summary>Which queries read the quantized cache's keys and values when it is in the training loop.</summary>
public enum CacheQueries
{
    /// <summary>Every query, the prompt's too: stricter than generation.</summary>
    All,

    /// <summary>
    /// Only the answer tokens that predict the next answer token, as in generation, where the prompt is attended in full
    /// precision at prefill and only the decode steps read the cache; the other queries read the exact keys and values.
    /// </summary>
    Answers,

    /// <summary>
    /// Every query after the video (the question's tokens that follow it, the generation prompt and the answers), as when
    /// a question is answered from a remembered video: the video was prefilled and stored compressed first, and
    /// everything after it attends to the stored cache; the video's own tokens (and any text before it) attend to the
    /// exact keys and values, as the video's prefill does.
    /// </summary>
    AfterVideo,

    /// <summary>
    /// Each batch group that goes through the cache picks <see cref="Answers"/> or <see cref="AfterVideo"/> with equal
    /// chance: the model learns both ways a question is answered with a compressed cache, in one pass (the video's prefill
    /// exact, answers through the cache) and from a remembered video (everything after the video through the cache).
    /// </summary>
    AnswersOrAfterVideo,
}
