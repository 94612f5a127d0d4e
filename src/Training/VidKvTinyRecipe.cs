using VidKV.AI.Backend.Models.Siglip;
using VidKV.AI.Backend.Models.Qwen2;
using VidKV.AI.Training.Text;
using System.Text.Json.Nodes;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Training;

/// <summary>
/// The built-in model's recipe: a small LLaVA-OneVision (96-pixel frames in 12-pixel patches pooled to 16 tokens a frame,
/// a 3-layer SigLIP tower, a 4-layer Qwen2 decoder with head dimension 64 and grouped-query attention) and its own
/// byte-level BPE tokenizer trained on the synthetic task's language.
/// </summary>
public static class VidKvTinyRecipe
{
    /// <summary>Frame side in pixels.</summary>
    public const int ImageSize = 96;

    /// <summary>Frames the model is given for a question other than a needle one (sampled uniformly from longer videos).</summary>
    public const int MaxFrames = 32;

    /// <summary>Pooled tokens per side of a frame: 96 / 12 = 8 patches a side, pooled 2x.</summary>
    public const int CellsPerSide = 4;

    /// <summary>
    /// How many frames of a sample's video the model is given: all of them for a needle question (the needle is visible
    /// on 2 to 6 frames, which uniform sampling would skip), otherwise at most <paramref name="maxFrames"/>.
    /// </summary>
    public static int FramesFor(VideoQaSample sample, int maxFrames = MaxFrames)
    {
        ArgumentNullException.ThrowIfNull(sample);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxFrames, 1);
        return sample.Family == QuestionFamily.Needle ? sample.FrameCount : Math.Min(sample.FrameCount, maxFrames);
    }

    /// <summary>The indices of the <see cref="FramesFor"/> frames, sampled uniformly (numpy's linspace) when fewer than the video's.</summary>
    public static long[] FrameIndices(VideoQaSample sample, int maxFrames = MaxFrames)
    {
        int take = FramesFor(sample, maxFrames);
        return take == sample.FrameCount
            ? [.. Enumerable.Range(0, take).Select(i => (long)i)]
            : FrameIndexSampler.Linspace(0, sample.FrameCount - 1, take);
    }

    /// <summary>The special tokens, in id order after the learned vocabulary.</summary>
    public static readonly IReadOnlyList<string> SpecialTokens = new[] { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>" };

    /// <summary>The user turn of a question about one video: the question before or after the video.</summary>
    public static ChatPart[] UserParts(string question, bool questionFirst) =>
        questionFirst ? [new TextPart(question), new VideoPart()] : [new VideoPart(), new TextPart(question)];

    /// <summary>The tokenizer.json text: BPE learned from every question template and answer the generator produces.</summary>
    public static string TrainTokenizer(int samples = 4000, int vocabSize = 448)
    {
        var options = new SceneOptions { MinFrames = 8, MaxFrames = 64, NeedleMinFrames = 48 };
        var corpus = new List<string>();
        for (int seed = 0; seed < samples; seed++)
        {
            var s = SceneGenerator.Generate(1_000_000 + seed, options);
            corpus.Add(s.Question);
            corpus.Add(" " + s.Answer);
        }

        corpus.AddRange(SceneVocabulary.AllAnswers.Select(a => " " + a));
        corpus.AddRange(new[] { "user ", "assistant\n", "system ", "You are a helpful assistant." });
        return BpeTokenizerTrainer.Train(corpus, vocabSize, SpecialTokens);
    }

    /// <summary>The model configuration for a tokenizer.</summary>
    public static LlavaOnevisionConfig ModelConfig(Qwen2Tokenizer tokenizer)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        int Id(string token) => tokenizer.TokenToId(token) ?? throw new InvalidOperationException($"The tokenizer has no {token}.");
        return new LlavaOnevisionConfig
        {
            Text = new Qwen2Config
            {
                VocabSize = tokenizer.VocabularySize,
                HiddenSize = 256,
                IntermediateSize = 704,
                NumLayers = 4,
                NumHeads = 4,
                NumKeyValueHeads = 2,
                HeadDim = 64,
                RmsNormEps = 1e-6,
                RopeTheta = 10000,
                MaxPositionEmbeddings = 8192,
                TieWordEmbeddings = true,
                EosTokenIds = new[] { Id("<|im_end|>") },
            },
            Vision = new SiglipVisionConfig
            {
                HiddenSize = 128,
                IntermediateSize = 384,
                NumLayers = 3,
                NumHeads = 4,
                ImageSize = ImageSize,
                PatchSize = 12,
                NumChannels = 3,
                LayerNormEps = 1e-6,
            },
            ImageTokenId = Id("<image>"),
            VideoTokenId = Id("<video>"),
            VisionFeatureLayer = -1,
            VisionFeatureSelectStrategy = "full",
            VisionAspectRatio = "anyres_max_9",
            ImageGridPinpoints = new[] { (96, 96), (96, 192), (192, 96), (192, 192) },
            ProjectorBias = true,
        };
    }

    /// <summary>preprocessor_config.json: 96-pixel frames, bicubic resize, mean and std 0.5.</summary>
    public static string PreprocessorConfigJson() => new JsonObject
    {
        ["image_processor_type"] = "LlavaOnevisionImageProcessor",
        ["do_resize"] = true,
        ["size"] = new JsonObject { ["height"] = ImageSize, ["width"] = ImageSize },
        ["resample"] = 3,
        ["do_rescale"] = true,
        ["rescale_factor"] = 1.0 / 255,
        ["do_normalize"] = true,
        ["image_mean"] = new JsonArray(0.5, 0.5, 0.5),
        ["image_std"] = new JsonArray(0.5, 0.5, 0.5),
        ["do_convert_rgb"] = true,
        ["do_pad"] = true,
        ["image_grid_pinpoints"] = new JsonArray(new JsonArray(96, 96), new JsonArray(96, 192), new JsonArray(192, 96), new JsonArray(192, 192)),
    }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });

    /// <summary>tokenizer_config.json naming the end and padding tokens.</summary>
    public static string TokenizerConfigJson() => new JsonObject
    {
        ["eos_token"] = "<|im_end|>",
        ["pad_token"] = "<|endoftext|>",
        ["bos_token"] = null,
        ["model_max_length"] = 8192,
    }.ToJsonString(new System.Text.Json.JsonSerializerOptions { WriteIndented = true });
}
