using System.Diagnostics;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Synthetic;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Vision;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Training;

/// <summary>
/// Trains the built-in model on the synthetic video QA task: next-token cross-entropy on the answer (and the end of
/// turn) given the chat-formatted question and the video. Reproducible from <see cref="TrainingOptions.Seed"/> on a
/// given device.
/// </summary>
public sealed class SyntheticTrainer
{
    private readonly TrainingOptions _options;
    private readonly Action<string> _log;

    /// <summary>Creates a trainer.</summary>
    public SyntheticTrainer(TrainingOptions options, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _log = log ?? (_ => { });
    }

    /// <summary>
    /// Trains a new model and writes a complete checkpoint folder to <paramref name="outputDirectory"/>: config.json,
    /// model.safetensors, tokenizer.json, tokenizer_config.json, preprocessor_config.json.
    /// </summary>
    public void Train(string outputDirectory, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        Directory.CreateDirectory(outputDirectory);
        File.WriteAllText(Path.Combine(outputDirectory, "tokenizer.json"), VidKvTinyRecipe.TrainTokenizer());
        File.WriteAllText(Path.Combine(outputDirectory, "tokenizer_config.json"), VidKvTinyRecipe.TokenizerConfigJson());
        File.WriteAllText(Path.Combine(outputDirectory, "preprocessor_config.json"), VidKvTinyRecipe.PreprocessorConfigJson());
        var tokenizer = Qwen2Tokenizer.FromDirectory(outputDirectory);
        var preprocessor = VideoFramePreprocessor.FromCheckpoint(outputDirectory);
        var config = VidKvTinyRecipe.ModelConfig(tokenizer);
        var device = _options.Device ?? CPU;

        using var model = LlavaOnevisionModel.Create(config, new ModelLoadOptions { Device = device }, _options.Seed);
        model.SetTrainable(true);
        long parameters = model.parameters().Sum(p => p.NumberOfElements);
        _log($"model: {parameters:N0} parameters on {device}; vocabulary {tokenizer.VocabularySize}");
        using var optimizer = optim.AdamW(model.parameters(), _options.LearningRate, weight_decay: _options.WeightDecay);
        var sceneOptions = new SceneOptions { Width = VidKvTinyRecipe.ImageSize, Height = VidKvTinyRecipe.ImageSize, MinFrames = 8, MaxFrames = _options.MaxVideoFrames, NeedleMinFrames = Math.Min(48, _options.MaxVideoFrames) };
        int endOfTurn = tokenizer.TokenToId("<|im_end|>")!.Value;
        var clock = Stopwatch.StartNew();
        double running = 0;
        int step = 0;
        while (Progress(++step - 1, clock.Elapsed) < 1.0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            SetLearningRate(optimizer, step, Progress(step, clock.Elapsed));
            optimizer.zero_grad();
            double loss = BatchLoss(model, tokenizer, preprocessor, sceneOptions, endOfTurn, device, step);
            nn.utils.clip_grad_norm_(model.parameters(), 1.0);
            optimizer.step();
            running = step == 1 ? loss : (0.98 * running) + (0.02 * loss);
            if (step % 50 == 0 || step == 1)
            {
                _log($"step {step}: loss {loss:F4} (smoothed {running:F4}), {clock.Elapsed.TotalSeconds:F0} s");
            }

            bool last = Progress(step, clock.Elapsed) >= 1.0;
            if (_options.EvaluateEvery > 0 && (step % _options.EvaluateEvery == 0 || last))
            {
                model.SetTrainable(false);
                double accuracy = QuickAccuracy(model, tokenizer, preprocessor, sceneOptions, endOfTurn, device);
                model.Save(outputDirectory);
                model.SetTrainable(true);
                _log($"step {step}: validation exact-match accuracy {accuracy:P1} on {_options.ValidationSamples} held-out samples (saved)");
            }
        }

        model.SetTrainable(false);
        model.Save(outputDirectory);
        _log($"saved {outputDirectory} after {clock.Elapsed.TotalSeconds:F0} s");
    }

    /// <summary>
    /// One step's samples in one batch: the vision tower runs once over every frame, sequences are right-padded (causal
    /// attention keeps real tokens from seeing the padding), and the loss is the mean over all answer tokens.
    /// </summary>
    private double BatchLoss(LlavaOnevisionModel model, Qwen2Tokenizer tokenizer, VideoFramePreprocessor preprocessor, SceneOptions sceneOptions, int endOfTurn, Device device, int step)
    {
        using var scope = NewDisposeScope();
        var samples = Enumerable.Range(0, _options.BatchSize).Select(i => SceneGenerator.Generate(SyntheticSeed(step, i), sceneOptions)).ToList();
        var encoded = samples.Select(s => Encode(tokenizer, model.Config, s, endOfTurn)).ToList();
        var features = model.EncodeVideos(samples.Select(s => Frames(s, preprocessor, device)).ToList());
        int longest = encoded.Max(e => e.Ids.Count);
        var rows = new List<long>();
        var targets = new List<long>();
        var sequences = new List<Tensor>();
        for (int b = 0; b < samples.Count; b++)
        {
            var (ids, answerStart) = encoded[b];
            var input = tensor(ids.Select(x => (long)x).ToArray(), device: device).reshape(1, -1);
            var embeds = model.MergeVisual(input, model.Embed(input), features[b], null);
            sequences.Add(nn.functional.pad(embeds, new long[] { 0, 0, 0, longest - ids.Count }));
            for (int p = answerStart; p < ids.Count; p++)
            {
                // Position p - 1 predicts token p: the answer tokens and the end of turn.
                rows.Add(((long)b * longest) + p - 1);
                targets.Add(ids[p]);
            }
        }

        var logits = model.Logits(model.Forward(cat(sequences, 0)));
        var predicted = logits.reshape(-1, logits.shape[^1]).index_select(0, tensor(rows.ToArray(), device: device));
        var loss = nn.functional.cross_entropy(predicted, tensor(targets.ToArray(), device: device));
        loss.backward();
        return loss.item<float>();
    }

    /// <summary>Seeds of training samples: disjoint from the held-out ranges the evaluator uses (below 1,000,000).</summary>
    public static int SyntheticSeed(int step, int index) => 10_000_000 + (step * 64) + index;

    /// <summary>Prompt and answer ids of a sample, with the video's placeholder expanded; returns where the answer starts.</summary>
    internal static (List<int> Ids, int AnswerStart) Encode(Qwen2Tokenizer tokenizer, LlavaOnevisionConfig config, VideoQaSample sample, int endOfTurn)
    {
        var turns = new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart(sample.Question) }) };
        string prompt = LlavaOnevisionChatTemplate.Render(turns, addGenerationPrompt: true);
        int frames = Math.Min(sample.FrameCount, MaxFramesFor(sample));
        var ids = new List<int>();
        foreach (int id in tokenizer.Encode(prompt))
        {
            if (id == config.VideoTokenId)
            {
                ids.AddRange(Enumerable.Repeat(id, VideoFramePreprocessor.CountVideoTokens(frames, config.Vision.PatchesPerSide)));
            }
            else
            {
                ids.Add(id);
            }
        }

        int answerStart = ids.Count;
        ids.AddRange(tokenizer.Encode(sample.Answer));
        ids.Add(endOfTurn);
        return (ids, answerStart);
    }

    private static int MaxFramesFor(VideoQaSample sample) => sample.Family == QuestionFamily.Needle ? sample.FrameCount : 32;

    private Tensor Frames(VideoQaSample sample, VideoFramePreprocessor preprocessor, Device device)
    {
        using var scope = NewDisposeScope();
        var video = SceneRenderer.Render(sample, VidKvTinyRecipe.ImageSize, VidKvTinyRecipe.ImageSize);
        int take = Math.Min(sample.FrameCount, MaxFramesFor(sample));
        if (take < sample.FrameCount)
        {
            var indices = FrameIndexSampler.Linspace(0, sample.FrameCount - 1, take);
            video = video.index_select(0, tensor(indices.ToArray()));
        }

        return preprocessor.Preprocess(video).to(device).MoveToOuterDisposeScope();
    }

    private double QuickAccuracy(LlavaOnevisionModel model, Qwen2Tokenizer tokenizer, VideoFramePreprocessor preprocessor, SceneOptions sceneOptions, int endOfTurn, Device device)
    {
        int correct = 0;
        for (int i = 0; i < _options.ValidationSamples; i++)
        {
            var sample = SceneGenerator.Generate(SyntheticDataset.SeedOf(_options.Seed, DatasetSplit.Validation, i), sceneOptions);
            using var scope = NewDisposeScope();
            var (ids, answerStart) = Encode(tokenizer, model.Config, sample, endOfTurn);
            var input = tensor(ids.Select(x => (long)x).ToArray(), device: device).reshape(1, -1);
            var embeds = model.MergeVisual(input, model.Embed(input), model.EncodeVideo(Frames(sample, preprocessor, device)), null);
            var logits = model.Logits(model.Forward(embeds)).squeeze(0);
            // Teacher-forced exact match: every answer token (and the end of turn) must be the most likely one.
            var predicted = logits.narrow(0, answerStart - 1, ids.Count - answerStart).argmax(-1);
            var targets = input.squeeze(0).narrow(0, answerStart, ids.Count - answerStart);
            correct += predicted.eq(targets).all().item<bool>() ? 1 : 0;
        }

        return (double)correct / _options.ValidationSamples;
    }

    /// <summary>Fraction of the run done after <paramref name="steps"/> steps: steps or time, whichever is further along.</summary>
    private double Progress(int steps, TimeSpan elapsed)
    {
        double byTime = _options.MaxDuration is { } max ? elapsed / max : 0;
        return Math.Max((double)steps / _options.Steps, byTime);
    }

    private void SetLearningRate(optim.Optimizer optimizer, int step, double progress)
    {
        double lr = step <= _options.WarmupSteps
            ? _options.LearningRate * step / Math.Max(1, _options.WarmupSteps)
            : _options.LearningRate * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1.0, progress)));
        foreach (var group in optimizer.ParamGroups)
        {
            group.LearningRate = lr;
        }
    }
}
