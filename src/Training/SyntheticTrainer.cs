using VidKV.AI.Backend.Models;
using System.Diagnostics;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Vision;
using VidKV.AI.Quantization;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Training;

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

    /// <summary>
    /// The auxiliary visual head's weights, written to the checkpoint's <see cref="HeadsFolder"/> so that a run continued from
    /// it (<see cref="TrainingOptions.InitialModel"/>) keeps its head instead of starting a random one; not part of the model.
    /// </summary>
    public const string VisualHeadFile = "visual_head.dat";

    /// <summary>The decoder motion objective's head (<see cref="TrainingOptions.MotionLossWeight"/>), kept like <see cref="VisualHeadFile"/>.</summary>
    public const string MotionHeadFile = "motion_head.dat";

    /// <summary>
    /// Where the training heads of a checkpoint folder live: beside it, named "&lt;folder&gt;-training", so the checkpoint
    /// folder holds only what inference loads.
    /// </summary>
    public static string HeadsFolder(string checkpointDirectory)
    {
        ArgumentException.ThrowIfNullOrEmpty(checkpointDirectory);
        return Path.TrimEndingDirectorySeparator(Path.GetFullPath(checkpointDirectory)) + "-training";
    }

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
    /// preprocessor_config.json; the auxiliary heads' weights (<see cref="VisualHeadFile"/>) go to its <see cref="HeadsFolder"/>.
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
        if (_options.MotionLayer is { } layer && layer > model.Config.Text.NumLayers)
        {
            throw new ArgumentException($"MotionLayer ({layer}) must be a decoder layer, 1 to {model.Config.Text.NumLayers} for this model.");
        }

        model.SetTrainable(true);
        using var head = Head(model.Config.Text.HiddenSize, VisualTargets.HeadOutputs, 1, device);
        string? headFrom = LoadHead(head, VisualHeadFile);
        using var motionHead = _options.MotionLossWeight > 0 ? Head(model.Config.Text.HiddenSize, VisualTargets.MotionClasses, 2, device) : null;
        string? motionFrom = motionHead is null ? null : LoadHead(motionHead, MotionHeadFile);

        // The quantized cache in the loop: one round trip per profile, chosen per batch group by a generator of its own.
        CacheRoundTrip[] roundTrips = _options.QuantizedCacheShare > 0
            ? [.. new[] { CacheProfile.Reference, CacheProfile.Compact }.Select(p => new CacheRoundTrip(KVCacheOptions.FromPreset(_options.QuantizedCachePreset, p) with { ScaledTernary = _options.QuantizedCacheScaledTernary }))]
            : [];
        var cacheChoice = new Random(unchecked((_options.Seed * 7919) + 17));
        (CacheRoundTrip Trip, CacheQueries Queries)? ChooseRoundTrip()
        {
            if (roundTrips.Length == 0 || cacheChoice.NextDouble() >= _options.QuantizedCacheShare)
            {
                return null;
            }

            var trip = roundTrips[cacheChoice.Next(roundTrips.Length)];
            var queries = _options.QuantizedCacheQueries == CacheQueries.AnswersOrAfterVideo
                ? (cacheChoice.Next(2) == 0 ? CacheQueries.Answers : CacheQueries.AfterVideo)
                : _options.QuantizedCacheQueries;
            return (trip, queries);
        }

        var trained = model.parameters().Concat(head.parameters()).Concat(motionHead?.parameters() ?? []).ToList();

        if (device.type == TorchSharp.DeviceType.CUDA)
        {
            // TF32 matrix products: the model is float32, and training does not need float32's last mantissa bits.
            backends.cuda.matmul.allow_tf32 = true;
            backends.cudnn.allow_tf32 = true;
        }

        long parameters = model.parameters().Sum(p => p.NumberOfElements);
        _log($"model: {parameters:N0} parameters on {device}; vocabulary {tokenizer.VocabularySize}{(_options.InitialModel is null ? string.Empty : $"; continued from {_options.InitialModel}")}"
            + (headFrom is null ? "; new visual head" : $"; visual head from {headFrom}")
            + (motionHead is null ? string.Empty : (motionFrom is null ? "; new motion head" : $"; motion head from {motionFrom}") + (_options.MotionLayer is { } l ? $" on layer {l}" : " on the final hidden state"))
            + (roundTrips.Length == 0 ? string.Empty : $"; {_options.QuantizedCachePreset}{(_options.QuantizedCacheScaledTernary ? " (scaled ternary)" : string.Empty)} cache in the loop for {_options.QuantizedCacheShare:P0} of batch groups, read by {_options.QuantizedCacheQueries switch { CacheQueries.All => "every query", CacheQueries.Answers => "the answers' queries", CacheQueries.AfterVideo => "every query after the video", _ => "the answers' queries in half of them and every query after the video in the other half" }}"));
        using var optimizer = optim.AdamW(trained, _options.LearningRate, weight_decay: _options.WeightDecay);
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
        using var producer = new BatchProducer<PreparedBatch>(step => PrepareBatch(step, sceneOptions, tokenizer, model.Config, endOfTurn), 1);
        int step = 0;
        long seen = 0;
        using var totals = zeros(6, device: device);
        int since = 0;
        long motionCells = 0;
        var profile = _options.Profile ? new StepProfile(device) : null;
        while (Progress(++step - 1, clock.Elapsed) < 1.0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            SetLearningRate(optimizer, step, Progress(step, clock.Elapsed));
            optimizer.zero_grad();
            using var batch = producer.Take();
            profile?.Mark(StepPart.Data);
            BatchLoss(model, head, motionHead, ChooseRoundTrip, preprocessor, batch, device, totals, profile);
            nn.utils.clip_grad_norm_(trained, 1.0);
            optimizer.step();
            profile?.Mark(StepPart.Optimizer);
            seen += batch.Samples;
            motionCells += batch.MotionCells;
            since++;
            if (step % 50 == 0 || step == 1)
            {
                // The only wait for the device in a step, every 50 steps: the means since the last report.
                float[] t = totals.cpu().data<float>().ToArray();
                using (no_grad())
                {
                    totals.zero_();
                }

                _log($"step {step}: answer loss {t[0] / since:F4}, visual loss {t[1] / since:F4}, visual colour accuracy {t[2] / Math.Max(1, t[3]):P1}"
                    + (motionHead is null ? " " : $", motion loss {t[4] / since:F4}, motion accuracy {t[5] / Math.Max(1, motionCells):P1} ")
                    + $"(means of {since} steps); {seen / clock.Elapsed.TotalSeconds:F0} samples/s, {clock.Elapsed.TotalSeconds:F0} s{profile?.Report()}");
                since = 0;
                motionCells = 0;
            }

            bool last = Progress(step, clock.Elapsed) >= 1.0;
            if (_options.EvaluateEvery > 0 && (step % _options.EvaluateEvery == 0 || last))
            {
                model.SetTrainable(false);
                var (accuracy, compressed, reused) = QuickAccuracy(model, tokenizer, preprocessor, sceneOptions, endOfTurn, device, roundTrips.Length > 0 ? roundTrips[^1] : null);
                Save(model, outputDirectory);
                SaveHeads(outputDirectory, head, motionHead);
                model.SetTrainable(true);
                _log($"step {step}: validation teacher-forced exact match {accuracy.Overall:P1} on {_options.ValidationSamples} held-out samples ({accuracy.PerFamily})"
                    + (roundTrips.Length == 0 ? string.Empty : $"; answers decoded through the {roundTrips[^1].Options.Profile} {_options.QuantizedCachePreset} cache {compressed!.Value.Overall:P1} ({compressed.Value.PerFamily})"
                        + $"; everything after the video through it, as from a remembered video, {reused!.Value.Overall:P1} ({reused.Value.PerFamily})") + " (saved)");
            }
        }

        model.SetTrainable(false);
        Save(model, outputDirectory);
        SaveHeads(outputDirectory, head, motionHead);
        _log($"saved {outputDirectory} after {step - 1} steps, {seen} samples, {clock.Elapsed.TotalSeconds:F0} s");
    }

    /// <summary>
    /// Saves the checkpoint; a model trained reading scaled ternary values (or started from one) says so in its config
    /// (<see cref="LlavaOnevisionConfig.ScaledTernaryValues"/>), so that its requests store ternary values scaled.
    /// </summary>
    private void Save(LlavaOnevisionModel model, string outputDirectory)
    {
        model.Save(outputDirectory);
        if (_options.QuantizedCacheScaledTernary && !model.Config.ScaledTernaryValues)
        {
            File.WriteAllText(Path.Combine(outputDirectory, "config.json"), (LlavaOnevisionConfig.Load(outputDirectory) with { ScaledTernaryValues = true }).ToJson());
        }
    }

    /// <summary>An auxiliary head, initialized from the seed (not from torch's global generator) so runs are reproducible.</summary>
    private TorchSharp.Modules.Linear Head(int hidden, int outputs, int seedOffset, Device device)
    {
        var head = nn.Linear(hidden, outputs, device: device);
        using var generator = new TorchSharp.torch.Generator((ulong)_options.Seed + (ulong)seedOffset);
        using (no_grad())
        using (var scope = NewDisposeScope())
        {
            head.weight!.copy_(randn([outputs, hidden], generator: generator).mul(tensor(1f / MathF.Sqrt(hidden))));
            head.bias!.zero_();
        }

        return head;
    }

    /// <summary>Loads a head's weights from the initial checkpoint's folder when it holds them; returns the file read, or null.</summary>
    private string? LoadHead(nn.Module head, string file)
    {
        string? path = _options.InitialModel is { } from ? Path.Combine(HeadsFolder(from), file) : null;
        if (path is null || !File.Exists(path))
        {
            return null;
        }

        head.load(path);
        return path;
    }

    private static void SaveHeads(string outputDirectory, nn.Module head, nn.Module? motionHead)
    {
        string folder = Directory.CreateDirectory(HeadsFolder(outputDirectory)).FullName;
        head.save(Path.Combine(folder, VisualHeadFile));
        motionHead?.save(Path.Combine(folder, MotionHeadFile));
    }

    /// <summary>Seeds of training samples: disjoint from the held-out ranges the evaluator uses (below 1,000,000).</summary>
    public static int SyntheticSeed(int step, int index) => 10_000_000 + (step * 64) + index;

    /// <summary>
    /// Seeds of the validation samples scored during training: the validation part of seed base 0, the same for every
    /// run (so runs side by side are scored on the same questions) and disjoint from the test part the evaluator scores
    /// by default (<see cref="SyntheticDataset.SeedOf"/>(0, <see cref="DatasetSplit.Test"/>, i)) and from training.
    /// </summary>
    public static int ValidationSeed(int index) => SyntheticDataset.SeedOf(0, DatasetSplit.Validation, index);

    private PreparedBatch PrepareBatch(int step, SceneOptions sceneOptions, Qwen2Tokenizer tokenizer, LlavaOnevisionConfig config, int endOfTurn)
    {
        var batch = new PreparedSample[_options.BatchSize];
        Parallel.For(0, batch.Length, i =>
        {
            var sample = SceneGenerator.Generate(SyntheticSeed(step, i), sceneOptions);
            batch[i] = PreparedSample.Create(sample, s => EncodeLocked(tokenizer, config, s, endOfTurn), VidKvTinyRecipe.ImageSize, VidKvTinyRecipe.CellsPerSide, _options.Position);
        });
        return PreparedBatch.Create(batch, config.VideoTokenId, VidKvTinyRecipe.ImageSize);
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
    /// One step's gradients. Each length group of the batch (assembled on the producer's thread, <see cref="PreparedBatch"/>)
    /// is one batched pass: one copy and preprocessing of all its frames, one vision tower pass, one merge of the visual
    /// rows into the right-padded prompts and one decoder pass. Losses are sums divided by the whole batch's counts, so
    /// the gradient is that of the batch mean whatever the grouping. The step's losses and visual colour hits are added
    /// to <paramref name="totals"/> on the device (answer, visual, colour hits, object cells, motion loss, motion hits): nothing here waits for the
    /// device.
    /// </summary>
    private void BatchLoss(LlavaOnevisionModel model, nn.Module<Tensor, Tensor> head, nn.Module<Tensor, Tensor>? motionHead, Func<(CacheRoundTrip Trip, CacheQueries Queries)?> roundTrip, VideoFramePreprocessor preprocessor, PreparedBatch batch, Device device, Tensor totals, StepProfile? profile)
    {
        int c = VisualTargets.ColorClasses, s = VisualTargets.ShapeClasses, z = VisualTargets.SizeClasses;
        foreach (var group in batch.Groups)
        {
            using var scope = NewDisposeScope();
            int count = group.Samples.Count, longest = group.Longest;
            var colorTarget = tensor(group.Color, device: device);
            var shapeTarget = tensor(group.Shape, device: device);
            var sizeTarget = tensor(group.Size, device: device);
            var offsetTarget = tensor(group.Offset, device: device).view(-1, 2);
            var scale = tensor(new[] { 1f / batch.Cells, 1f / batch.ObjectCells, 4f / batch.ObjectCells, 1f / batch.AnswerTokens, (float)_options.VisualLossWeight, (float)_options.MotionLossWeight / batch.MotionCells }, device: device);
            profile?.Mark(StepPart.Host);

            // The videos, all frames at once.
            var frames = group.Frames.to(device);
            profile?.Mark(StepPart.Upload);
            var pixels = preprocessor.Preprocess(frames);
            profile?.Mark(StepPart.Preprocess);
            var (pooled, visualRows) = model.EncodeVideoBatch(pixels, group.FramesPerVideo);
            profile?.Mark(StepPart.Vision);
            profile?.Count(group.FramesPerVideo.Sum());

            // Auxiliary visual objective on the pooled tokens the decoder reads (the newline feature excluded).
            var outputs = head.forward(pooled.reshape(-1, pooled.shape[^1]));
            var hasObject = shapeTarget.ne(VisualTargets.Ignore);
            var colorLogits = outputs.narrow(1, 0, c);
            var sum = nn.Reduction.Sum;
            var colorLoss = nn.functional.cross_entropy(colorLogits, colorTarget, reduction: sum).mul(scale[0]);
            var shapeLoss = nn.functional.cross_entropy(outputs.narrow(1, c, s), shapeTarget, reduction: sum).mul(scale[1]);
            var sizeLoss = nn.functional.cross_entropy(outputs.narrow(1, c + s, z), sizeTarget, reduction: sum).mul(scale[1]);
            var offsetError = Scalars.Add(outputs.narrow(1, c + s + z, 2).sigmoid(), offsetTarget.neg());
            var offsetLoss = offsetError.square().mul(hasObject.unsqueeze(1)).sum().mul(scale[2]);
            var visualLoss = Scalars.Add(Scalars.Add(colorLoss, shapeLoss), Scalars.Add(sizeLoss, offsetLoss));

            // The answer loss over the right-padded prompts with the visual rows in place of the placeholders.
            var idTensor = tensor(group.Ids, [count, longest], device: device);
            var embeds = model.Embed(idTensor);
            long d = embeds.shape[^1];
            var merged = embeds.reshape(-1, d).index_copy(0, tensor(group.VideoPositions, device: device), visualRows.to(embeds.dtype)).view(count, longest, d);
            var chosen = roundTrip();
            var trip = chosen?.Trip;
            var hook = new TrainingHook(
                trip,
                chosen is null ? null : chosen.Value.Queries switch
                {
                    CacheQueries.Answers => RowMask(group.DecodeRows, count, longest, device),
                    CacheQueries.AfterVideo => RowMask(group.AfterVideoRows, count, longest, device),
                    _ => null,
                },
                keepLayerOutputs: motionHead is not null && _options.MotionLayer is not null);
            var hidden = model.Forward(new DecoderInput(merged) { Hook = hook });
            var layerOutputs = hook.LayerOutputs;
            var logits = model.Logits(hidden);
            var predicted = logits.reshape(-1, logits.shape[^1]).index_select(0, tensor(group.AnswerRows, device: device));
            var answerLoss = nn.functional.cross_entropy(predicted, tensor(group.AnswerTargets, device: device), reduction: sum).mul(scale[3]);
            var loss = Scalars.Add(answerLoss, visualLoss.mul(scale[4]));

            // The decoder's motion objective: its hidden state (final, or a chosen layer's output) at each pooled token names
            // the motion of the object there.
            Tensor? motionLoss = null, motionHits = null;
            if (motionHead is not null)
            {
                var source = layerOutputs is null ? hidden : layerOutputs[_options.MotionLayer!.Value - 1];
                var cells = source.reshape(-1, d).index_select(0, tensor(group.CellPositions, device: device));
                var motionLogits = motionHead.forward(cells);
                var motionTarget = tensor(group.Motion, device: device);
                motionLoss = nn.functional.cross_entropy(motionLogits, motionTarget, reduction: sum).mul(scale[5]);
                using (no_grad())
                {
                    motionHits = motionLogits.argmax(1).eq(motionTarget).sum().to(ScalarType.Float32);
                }

                loss = Scalars.Add(loss, motionLoss);
            }

            profile?.Mark(StepPart.Decoder);
            loss.backward();
            profile?.Mark(StepPart.Backward);

            using (no_grad())
            {
                var hits = colorLogits.argmax(1).eq(colorTarget).logical_and(hasObject).sum();
                totals.narrow(0, 0, 4).add_(stack(new[] { answerLoss.detach(), visualLoss.detach(), hits.to(ScalarType.Float32), hasObject.sum().to(ScalarType.Float32) }));
                if (motionLoss is not null)
                {
                    totals.narrow(0, 4, 2).add_(stack(new[] { motionLoss.detach(), motionHits! }));
                }
            }
        }
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

    /// <summary>A bool mask [rows, columns] that is true at the given flat indices.</summary>
    internal static Tensor RowMask(long[] flat, int rows, int columns, Device device)
    {
        bool[] mask = new bool[rows * columns];
        foreach (long i in flat)
        {
            mask[i] = true;
        }

        return tensor(mask, [rows, columns], device: device);
    }

    /// <summary>
    /// Teacher-forced exact match on the validation split; with <paramref name="roundTrip"/>, also with the answer tokens
    /// attending to every layer's keys and values as that cache gives them back, as the decode steps of generation do
    /// (the first answer token is predicted from the prompt in full precision, as at prefill), and with every query after
    /// the video attending to it, as when the question is answered from a remembered video (the whole answer, its first
    /// token included, then comes from the stored cache). Each video is encoded once.
    /// </summary>
    private ((double Overall, string PerFamily) Exact, (double Overall, string PerFamily)? ThroughCache, (double Overall, string PerFamily)? AfterVideo) QuickAccuracy(
        LlavaOnevisionModel model, Qwen2Tokenizer tokenizer, VideoFramePreprocessor preprocessor, SceneOptions sceneOptions, int endOfTurn, Device device, CacheRoundTrip? roundTrip)
    {
        var exact = new Dictionary<QuestionFamily, (int Correct, int Total)>();
        var throughCache = new Dictionary<QuestionFamily, (int Correct, int Total)>();
        var afterVideo = new Dictionary<QuestionFamily, (int Correct, int Total)>();
        for (int i = 0; i < _options.ValidationSamples; i++)
        {
            var sample = SceneGenerator.Generate(ValidationSeed(i), sceneOptions);
            var p = PreparedSample.Create(sample, s => Encode(tokenizer, model.Config, s, endOfTurn, _options.QuestionFirst >= 0.5), VidKvTinyRecipe.ImageSize, VidKvTinyRecipe.CellsPerSide);
            using var scope = NewDisposeScope();
            var video = Video(p, preprocessor, device);
            var input = tensor(p.Ids.Select(x => (long)x).ToArray(), device: device).reshape(1, -1);
            var embeds = model.MergeVisual(input, model.Embed(input), model.EncodeVideo(video), null);
            var targets = input.squeeze(0).narrow(0, p.AnswerStart, p.FirstAnswerTokens);

            // Teacher-forced exact match: every answer token (and the end of turn) must be the most likely one.
            void Score(Dictionary<QuestionFamily, (int Correct, int Total)> counts, Tensor hidden)
            {
                var predicted = model.Logits(hidden).squeeze(0).narrow(0, p.AnswerStart - 1, p.FirstAnswerTokens).argmax(-1);
                var (correct, total) = counts.GetValueOrDefault(sample.Family);
                counts[sample.Family] = (correct + (predicted.eq(targets).all().item<bool>() ? 1 : 0), total + 1);
            }

            Score(exact, model.Forward(new DecoderInput(embeds)));
            if (roundTrip is not null)
            {
                long[] decodeRows = [.. p.DecodePositions(0).Select(t => (long)t)];
                var hook = new TrainingHook(roundTrip, RowMask(decodeRows, 1, p.Ids.Count, device), keepLayerOutputs: false);
                Score(throughCache, model.Forward(new DecoderInput(embeds) { Hook = hook }));
                long[] afterRows = [.. p.AfterVideoPositions(model.Config.VideoTokenId).Select(t => (long)t)];
                var reused = new TrainingHook(roundTrip, RowMask(afterRows, 1, p.Ids.Count, device), keepLayerOutputs: false);
                Score(afterVideo, model.Forward(new DecoderInput(embeds) { Hook = reused }));
            }
        }

        (double, string) Summary(Dictionary<QuestionFamily, (int Correct, int Total)> counts) => (
            (double)counts.Values.Sum(v => v.Correct) / _options.ValidationSamples,
            string.Join(", ", counts.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key} {(double)kv.Value.Correct / kv.Value.Total:P0}")));
        return (Summary(exact), roundTrip is null ? null : Summary(throughCache), roundTrip is null ? null : Summary(afterVideo));
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

    private enum StepPart
    {
        Data,
        Host,
        Upload,
        Preprocess,
        Vision,
        Decoder,
        Backward,
        Optimizer,
    }

    /// <summary>Wall time of each part of the steps since the last report, measured after waiting for the device.</summary>
    private sealed class StepProfile(Device device)
    {
        private readonly double[] _seconds = new double[Enum.GetValues<StepPart>().Length];
        private readonly Stopwatch _clock = Stopwatch.StartNew();
        private int _steps;
        private int _groups;
        private long _frames;

        /// <summary>Counts one length group of <paramref name="frames"/> frames.</summary>
        public void Count(int frames)
        {
            _groups++;
            _frames += frames;
        }

        public void Mark(StepPart part)
        {
            if (device.type == TorchSharp.DeviceType.CUDA)
            {
                cuda.synchronize(device);
            }

            _seconds[(int)part] += _clock.Elapsed.TotalSeconds;
            _clock.Restart();
            if (part == StepPart.Optimizer)
            {
                _steps++;
            }
        }

        public string Report()
        {
            if (_steps == 0)
            {
                return string.Empty;
            }

            string parts = string.Join(", ", Enum.GetValues<StepPart>().Select(p => $"{p.ToString().ToLowerInvariant()} {1000 * _seconds[(int)p] / _steps:F0}"));
            string sizes = $"; {(double)_groups / _steps:F1} length groups and {(double)_frames / _steps:F0} frames a step";
            Array.Clear(_seconds);
            _steps = 0;
            _groups = 0;
            _frames = 0;
            return $"; ms a step: {parts}{sizes}";
        }
    }
}
