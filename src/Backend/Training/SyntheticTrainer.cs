using System.Diagnostics;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Synthetic;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Vision;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Training;

/// <summary>
/// Trains the built-in model on the synthetic video QA task: next-token cross-entropy on the answer (and the end of
/// turn) given the chat-formatted question and the video, plus an auxiliary dense visual objective (colour, shape,
/// size and position of the object in each pooled video token, <see cref="VisualTargets"/>) through a small head that
/// is not part of the saved model. Reproducible from <see cref="TrainingOptions.Seed"/> on a given device.
/// </summary>
public sealed class SyntheticTrainer
{
    private readonly TrainingOptions _options;
    private readonly Action<string> _log;
    private readonly object _tokenizerLock = new();

    /// <summary>Creates a trainer.</summary>
    public SyntheticTrainer(TrainingOptions options, Action<string>? log = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _log = log ?? (_ => { });
    }

    /// <summary>
    /// Trains a model (a new one, or <see cref="TrainingOptions.InitialModel"/>) and writes a complete checkpoint folder
    /// to <paramref name="outputDirectory"/>: config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
    /// preprocessor_config.json.
    /// </summary>
    public void Train(string outputDirectory, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(outputDirectory);
        Directory.CreateDirectory(outputDirectory);
        if (_options.InitialModel is { } initial)
        {
            foreach (var file in new[] { "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json" })
            {
                File.Copy(Path.Combine(initial, file), Path.Combine(outputDirectory, file), overwrite: true);
            }
        }
        else
        {
            File.WriteAllText(Path.Combine(outputDirectory, "tokenizer.json"), VidKvTinyRecipe.TrainTokenizer());
            File.WriteAllText(Path.Combine(outputDirectory, "tokenizer_config.json"), VidKvTinyRecipe.TokenizerConfigJson());
            File.WriteAllText(Path.Combine(outputDirectory, "preprocessor_config.json"), VidKvTinyRecipe.PreprocessorConfigJson());
        }

        var tokenizer = Qwen2Tokenizer.FromDirectory(outputDirectory);
        var preprocessor = VideoFramePreprocessor.FromCheckpoint(outputDirectory);
        var device = _options.Device ?? CPU;
        using var model = _options.InitialModel is { } from
            ? LlavaOnevisionModel.Load(from, new ModelLoadOptions { Device = device })
            : LlavaOnevisionModel.Create(VidKvTinyRecipe.ModelConfig(tokenizer), new ModelLoadOptions { Device = device }, _options.Seed);
        model.SetTrainable(true);
        using var head = VisualHead(model.Config.Text.HiddenSize, device);
        long parameters = model.parameters().Sum(p => p.NumberOfElements);
        _log($"model: {parameters:N0} parameters on {device}; vocabulary {tokenizer.VocabularySize}{(_options.InitialModel is null ? string.Empty : $"; continued from {_options.InitialModel}")}");
        using var optimizer = optim.AdamW(model.parameters().Concat(head.parameters()), _options.LearningRate, weight_decay: _options.WeightDecay);
        var sceneOptions = new SceneOptions
        {
            Width = VidKvTinyRecipe.ImageSize,
            Height = VidKvTinyRecipe.ImageSize,
            MinFrames = 8,
            MaxFrames = _options.MaxVideoFrames,
            NeedleMinFrames = _options.MaxVideoFrames >= 64 ? 64 : 48,
            FamilyMix = _options.Families,
        };
        sceneOptions.Validate();
        int endOfTurn = tokenizer.TokenToId("<|im_end|>")!.Value;
        var clock = Stopwatch.StartNew();
        using var producer = new BatchProducer(step => PrepareBatch(step, sceneOptions, tokenizer, model.Config, endOfTurn), 1);
        var running = new Smoothed();
        int step = 0;
        long seen = 0;
        while (Progress(++step - 1, clock.Elapsed) < 1.0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            SetLearningRate(optimizer, step, Progress(step, clock.Elapsed));
            optimizer.zero_grad();
            var batch = producer.Take();
            var losses = BatchLoss(model, head, preprocessor, batch, device);
            nn.utils.clip_grad_norm_(model.parameters().Concat(head.parameters()), 1.0);
            optimizer.step();
            seen += batch.Length;
            running.Add(losses);
            if (step % 50 == 0 || step == 1)
            {
                _log($"step {step}: answer loss {losses.Answer:F4} (smoothed {running.Answer:F4}), visual loss {losses.Visual:F4} (smoothed {running.Visual:F4}), "
                    + $"visual colour accuracy {running.ColorAccuracy:P1}; {seen / clock.Elapsed.TotalSeconds:F0} samples/s, {clock.Elapsed.TotalSeconds:F0} s");
            }

            bool last = Progress(step, clock.Elapsed) >= 1.0;
            if (_options.EvaluateEvery > 0 && (step % _options.EvaluateEvery == 0 || last))
            {
                model.SetTrainable(false);
                var accuracy = QuickAccuracy(model, tokenizer, preprocessor, sceneOptions, endOfTurn, device);
                model.Save(outputDirectory);
                model.SetTrainable(true);
                _log($"step {step}: validation teacher-forced exact match {accuracy.Overall:P1} on {_options.ValidationSamples} held-out samples ({accuracy.PerFamily}) (saved)");
            }
        }

        model.SetTrainable(false);
        model.Save(outputDirectory);
        _log($"saved {outputDirectory} after {step - 1} steps, {seen} samples, {clock.Elapsed.TotalSeconds:F0} s");
    }

    /// <summary>The auxiliary head, initialized from the seed (not from torch's global generator) so runs are reproducible.</summary>
    private TorchSharp.Modules.Linear VisualHead(int hidden, Device device)
    {
        var head = nn.Linear(hidden, VisualTargets.HeadOutputs, device: device);
        using var generator = new TorchSharp.torch.Generator((ulong)_options.Seed + 1);
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            head.weight!.copy_(randn([VisualTargets.HeadOutputs, hidden], generator: generator).mul(tensor(1f / MathF.Sqrt(hidden))));
            head.bias!.zero_();
        }

        return head;
    }

    /// <summary>Seeds of training samples: disjoint from the held-out ranges the evaluator uses (below 1,000,000).</summary>
    public static int SyntheticSeed(int step, int index) => 10_000_000 + (step * 64) + index;

    private PreparedSample[] PrepareBatch(int step, SceneOptions sceneOptions, Qwen2Tokenizer tokenizer, LlavaOnevisionConfig config, int endOfTurn)
    {
        var batch = new PreparedSample[_options.BatchSize];
        Parallel.For(0, batch.Length, i =>
        {
            var sample = SceneGenerator.Generate(SyntheticSeed(step, i), sceneOptions);
            batch[i] = PreparedSample.Create(sample, s => EncodeLocked(tokenizer, config, s, endOfTurn), VidKvTinyRecipe.ImageSize, VidKvTinyRecipe.CellsPerSide);
        });
        return batch;
    }

    private (List<int> Ids, List<(int Start, int End)> Answers) EncodeLocked(Qwen2Tokenizer tokenizer, LlavaOnevisionConfig config, VideoQaSample sample, int endOfTurn)
    {
        var more = new List<SceneQuestion>();
        if (_options.QuestionsPerVideo > 1)
        {
            var all = SceneQuestions.About(sample).ToList();
            var random = new Random(sample.Seed);
            for (int k = 1; k < _options.QuestionsPerVideo && all.Count > 0; k++)
            {
                int pick = random.Next(all.Count);
                more.Add(all[pick]);
                all.RemoveAt(pick);
            }
        }

        lock (_tokenizerLock)
        {
            return Encode(tokenizer, config, sample, endOfTurn, QuestionFirst(sample), more);
        }
    }

    /// <summary>
    /// One step's gradients. Samples are grouped by length (needle videos are given every frame and are far longer), each
    /// group runs the vision tower once over all its frames and the decoder over right-padded sequences (causal attention
    /// keeps real tokens from seeing the padding); losses are sums divided by the whole batch's counts, so the gradient is
    /// that of the batch mean whatever the grouping.
    /// </summary>
    private StepLosses BatchLoss(LlavaOnevisionModel model, nn.Module<Tensor, Tensor> head, VideoFramePreprocessor preprocessor, PreparedSample[] batch, Device device)
    {
        int answerTokens = batch.Sum(p => p.AnswerTokens);
        int cells = batch.Sum(p => p.Targets.Color.Length);
        int objectCells = Math.Max(1, batch.Sum(p => p.Targets.Shape.Count(s => s != VisualTargets.Ignore)));
        double answer = 0, visual = 0;
        long colorCorrect = 0, colorTotal = 0;
        int c = VisualTargets.ColorClasses, s = VisualTargets.ShapeClasses, z = VisualTargets.SizeClasses;
        foreach (var group in batch.GroupBy(p => p.Sample.Family == QuestionFamily.Needle).OrderBy(g => g.Key))
        {
            using var scope = NewDisposeScope();
            var samples = group.ToList();
            var videos = samples.Select(p => Video(p, preprocessor, device)).ToList();
            var features = model.EncodeVideos(videos);

            // Auxiliary visual objective on the pooled tokens the decoder reads (the newline feature excluded).
            var tokens = cat(samples.Select((p, b) => features[b].narrow(0, 0, p.Targets.Color.Length)).ToList(), 0);
            var outputs = head.forward(tokens);
            var colorTarget = tensor(samples.SelectMany(p => p.Targets.Color).ToArray(), device: device);
            var shapeTarget = tensor(samples.SelectMany(p => p.Targets.Shape).ToArray(), device: device);
            var sizeTarget = tensor(samples.SelectMany(p => p.Targets.Size).ToArray(), device: device);
            var offsetTarget = tensor(samples.SelectMany(p => p.Targets.Offset).ToArray(), device: device).view(-1, 2);
            float[] objectFlags = [.. samples.SelectMany(p => p.Targets.Shape).Select(v => v == VisualTargets.Ignore ? 0f : 1f)];
            var hasObject = tensor(objectFlags, device: device).unsqueeze(1);
            var colorLogits = outputs.narrow(1, 0, c);
            var sum = nn.Reduction.Sum;
            Tensor Constant(double v) => tensor((float)v, device: device);
            var colorLoss = nn.functional.cross_entropy(colorLogits, colorTarget, reduction: sum).mul(Constant(1.0 / cells));
            var shapeLoss = nn.functional.cross_entropy(outputs.narrow(1, c, s), shapeTarget, reduction: sum).mul(Constant(1.0 / objectCells));
            var sizeLoss = nn.functional.cross_entropy(outputs.narrow(1, c + s, z), sizeTarget, reduction: sum).mul(Constant(1.0 / objectCells));
            var offsetError = Scalars.Add(outputs.narrow(1, c + s + z, 2).sigmoid(), offsetTarget.neg());
            var offsetLoss = offsetError.square().mul(hasObject).sum().mul(Constant(4.0 / objectCells));
            var visualLoss = Scalars.Add(Scalars.Add(colorLoss, shapeLoss), Scalars.Add(sizeLoss, offsetLoss));
            colorCorrect += colorLogits.argmax(1).eq(colorTarget).mul(hasObject.squeeze(1).to(ScalarType.Bool)).sum().item<long>();
            colorTotal += (long)objectFlags.Sum();

            // The answer loss.
            int longest = samples.Max(p => p.Ids.Count);
            var rows = new List<long>();
            var targets = new List<long>();
            var sequences = new List<Tensor>();
            for (int b = 0; b < samples.Count; b++)
            {
                var p = samples[b];
                var input = tensor(p.Ids.Select(x => (long)x).ToArray(), device: device).reshape(1, -1);
                var embeds = model.MergeVisual(input, model.Embed(input), features[b], null);
                sequences.Add(nn.functional.pad(embeds, [0, 0, 0, longest - p.Ids.Count]));
                foreach (var (start, end) in p.Answers)
                {
                    for (int t = start; t < end; t++)
                    {
                        // Position t - 1 predicts token t: the answer tokens and the end of turn.
                        rows.Add(((long)b * longest) + t - 1);
                        targets.Add(p.Ids[t]);
                    }
                }
            }

            var logits = model.Logits(model.Forward(cat(sequences, 0)));
            var predicted = logits.reshape(-1, logits.shape[^1]).index_select(0, tensor(rows.ToArray(), device: device));
            var answerLoss = nn.functional.cross_entropy(predicted, tensor(targets.ToArray(), device: device), reduction: sum).mul(Constant(1.0 / answerTokens));
            Scalars.Add(answerLoss, visualLoss.mul(Constant(_options.VisualLossWeight))).backward();
            answer += answerLoss.item<float>();
            visual += visualLoss.item<float>();
        }

        return new StepLosses(answer, visual, colorTotal == 0 ? 0 : (double)colorCorrect / colorTotal);
    }

    /// <summary>Whether a training sample puts its question before the video: a fixed share of seeds, chosen by the seed.</summary>
    private bool QuestionFirst(VideoQaSample sample) =>
        _options.QuestionFirst > 0 && ((uint)(sample.Seed * 2654435761u) / (double)uint.MaxValue) < _options.QuestionFirst;

    /// <summary>
    /// The ids of a conversation about a sample's video: its question with the video (placeholder expanded) and the
    /// generation prompt, its answer and end of turn, then each further question as a new user turn followed by its
    /// answer. Returns the ids and where each answer (with its end of turn) lies.
    /// </summary>
    internal static (List<int> Ids, List<(int Start, int End)> Answers) Encode(
        Qwen2Tokenizer tokenizer, LlavaOnevisionConfig config, VideoQaSample sample, int endOfTurn, bool questionFirst = false, IReadOnlyList<SceneQuestion>? more = null)
    {
        var turns = new[] { new ChatTurn(ChatRole.User, VidKvTinyRecipe.UserParts(sample.Question, questionFirst)) };
        string prompt = LlavaOnevisionChatTemplate.Render(turns, addGenerationPrompt: true);
        int frames = VidKvTinyRecipe.FramesFor(sample);
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

        var answers = new List<(int Start, int End)>();
        void Answer(string answer)
        {
            int start = ids.Count;
            ids.AddRange(tokenizer.Encode(answer));
            ids.Add(endOfTurn);
            answers.Add((start, ids.Count));
        }

        Answer(sample.Answer);
        foreach (var q in more ?? [])
        {
            ids.AddRange(tokenizer.Encode(LlavaOnevisionChatTemplate.Render([new ChatTurn(ChatRole.User, [new TextPart(q.Question)])], addGenerationPrompt: true)));
            Answer(q.Answer);
        }

        return (ids, answers);
    }

    /// <summary>A prepared sample's frames, preprocessed on the device.</summary>
    private static Tensor Video(PreparedSample p, VideoFramePreprocessor preprocessor, Device device)
    {
        int side = VidKvTinyRecipe.ImageSize;
        return preprocessor.Preprocess(tensor(p.Rgb, [p.Frames, side, side, 3], ScalarType.Byte).to(device));
    }

    private (double Overall, string PerFamily) QuickAccuracy(LlavaOnevisionModel model, Qwen2Tokenizer tokenizer, VideoFramePreprocessor preprocessor, SceneOptions sceneOptions, int endOfTurn, Device device)
    {
        var counts = new Dictionary<QuestionFamily, (int Correct, int Total)>();
        for (int i = 0; i < _options.ValidationSamples; i++)
        {
            var sample = SceneGenerator.Generate(SyntheticDataset.SeedOf(_options.Seed, DatasetSplit.Validation, i), sceneOptions);
            var p = PreparedSample.Create(sample, s => Encode(tokenizer, model.Config, s, endOfTurn, _options.QuestionFirst >= 0.5), VidKvTinyRecipe.ImageSize, VidKvTinyRecipe.CellsPerSide);
            using var scope = NewDisposeScope();
            var video = Video(p, preprocessor, device);
            var input = tensor(p.Ids.Select(x => (long)x).ToArray(), device: device).reshape(1, -1);
            var embeds = model.MergeVisual(input, model.Embed(input), model.EncodeVideo(video), null);
            var logits = model.Logits(model.Forward(embeds)).squeeze(0);

            // Teacher-forced exact match: every answer token (and the end of turn) must be the most likely one.
            var predicted = logits.narrow(0, p.AnswerStart - 1, p.FirstAnswerTokens).argmax(-1);
            var targets = input.squeeze(0).narrow(0, p.AnswerStart, p.FirstAnswerTokens);
            var (correct, total) = counts.GetValueOrDefault(sample.Family);
            counts[sample.Family] = (correct + (predicted.eq(targets).all().item<bool>() ? 1 : 0), total + 1);
        }

        double overall = (double)counts.Values.Sum(v => v.Correct) / _options.ValidationSamples;
        return (overall, string.Join(", ", counts.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {(double)kv.Value.Correct / kv.Value.Total:P0}")));
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
            : _options.LearningRate * (0.05 + (0.95 * 0.5 * (1 + Math.Cos(Math.PI * Math.Min(1.0, progress)))));
        foreach (var group in optimizer.ParamGroups)
        {
            group.LearningRate = lr;
        }
    }

    private readonly record struct StepLosses(double Answer, double Visual, double ColorAccuracy);

    private sealed class Smoothed
    {
        private bool _started;

        public double Answer { get; private set; }

        public double Visual { get; private set; }

        public double ColorAccuracy { get; private set; }

        public void Add(StepLosses l)
        {
            double k = _started ? 0.98 : 0;
            Answer = (k * Answer) + ((1 - k) * l.Answer);
            Visual = (k * Visual) + ((1 - k) * l.Visual);
            ColorAccuracy = (k * ColorAccuracy) + ((1 - k) * l.ColorAccuracy);
            _started = true;
        }
    }
}
