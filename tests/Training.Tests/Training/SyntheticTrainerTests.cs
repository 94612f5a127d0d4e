using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Training;
using static TorchSharp.torch;

namespace VidKV.AI.Training.Tests;

public sealed class SyntheticTrainerTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-train-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void Training_WritesALoadableCheckpoint_ReproduciblyFromTheSeed()
    {
        var options = new TrainingOptions { Steps = 2, BatchSize = 2, WarmupSteps = 1, EvaluateEvery = 0, Seed = 4 };
        string a = Path.Combine(_temp, "a"), b = Path.Combine(_temp, "b");
        var log = new List<string>();

        new SyntheticTrainer(options, log.Add).Train(a);
        new SyntheticTrainer(options).Train(b);

        Assert.Contains(log, l => l.Contains("3,721,856 parameters", StringComparison.Ordinal));
        foreach (var file in new[] { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "preprocessor_config.json" })
        {
            Assert.True(File.Exists(Path.Combine(a, file)), file);
        }

        // The checkpoint folder holds only what inference loads; the training heads are beside it.
        Assert.Equal(5, Directory.GetFiles(a).Length);
        Assert.True(File.Exists(Path.Combine(SyntheticTrainer.HeadsFolder(a), SyntheticTrainer.VisualHeadFile)));

        Assert.Equal(File.ReadAllText(Path.Combine(a, "tokenizer.json")), File.ReadAllText(Path.Combine(b, "tokenizer.json")));
        using var fa = SafetensorsFile.Open(Path.Combine(a, "model.safetensors"));
        using var fb = SafetensorsFile.Open(Path.Combine(b, "model.safetensors"));
        using var scope = NewDisposeScope();
        foreach (var name in fa.Tensors.Keys)
        {
            Assert.True(fa.Read(name).eq(fb.Read(name)).all().item<bool>(), $"{name} differs between two runs with seed 4");
        }

        using var vlm = LlavaOnevisionVideoModel.Load(a);
        Assert.Equal(96, vlm.Model.Config.Vision.ImageSize);
        Assert.Equal(vlm.Tokenizer.VocabularySize, vlm.Model.Config.Text.VocabSize);
    }

    [Fact]
    public void InvalidOptions_AreRejected()
    {
        Assert.Throws<ArgumentException>(() => new SyntheticTrainer(new TrainingOptions { Steps = 0 }));
        Assert.Throws<ArgumentException>(() => new SyntheticTrainer(new TrainingOptions { LearningRate = 0 }));
    }

    [Fact]
    public void Training_ContinuesFromACheckpoint_KeepingItsTokenizer()
    {
        string first = Path.Combine(_temp, "first"), second = Path.Combine(_temp, "second");
        new SyntheticTrainer(new TrainingOptions { Steps = 1, BatchSize = 2, WarmupSteps = 1, EvaluateEvery = 0, Seed = 2 }).Train(first);
        var log = new List<string>();

        new SyntheticTrainer(new TrainingOptions { Steps = 1, BatchSize = 2, WarmupSteps = 1, EvaluateEvery = 0, Seed = 3, InitialModel = first }, log.Add).Train(second);

        Assert.Contains(log, l => l.Contains("continued from", StringComparison.Ordinal));
        Assert.Contains(log, l => l.Contains($"visual head from {Path.Combine(SyntheticTrainer.HeadsFolder(first), SyntheticTrainer.VisualHeadFile)}", StringComparison.Ordinal));
        Assert.Equal(File.ReadAllText(Path.Combine(first, "tokenizer.json")), File.ReadAllText(Path.Combine(second, "tokenizer.json")));
        using var fa = SafetensorsFile.Open(Path.Combine(first, "model.safetensors"));
        using var fb = SafetensorsFile.Open(Path.Combine(second, "model.safetensors"));
        using var scope = NewDisposeScope();
        Assert.Contains(fa.Tensors.Keys, name => !fa.Read(name).eq(fb.Read(name)).all().item<bool>());
    }

    [Fact]
    public void MotionObjective_TrainsAHeadOnTheDecoder_SavedAndContinuedWithTheCheckpoint()
    {
        string first = Path.Combine(_temp, "motion1"), second = Path.Combine(_temp, "motion2");
        var options = new TrainingOptions { Steps = 1, BatchSize = 2, WarmupSteps = 1, EvaluateEvery = 0, Seed = 5, MotionLossWeight = 1, MaxVideoFrames = 16, Families = VidKV.AI.Training.Synthetic.FamilyMix.Parse("MotionDirection,Attribute") };
        var log = new List<string>();
        new SyntheticTrainer(options, log.Add).Train(first);

        Assert.Contains(log, l => l.Contains("new motion head", StringComparison.Ordinal));
        var loss = log.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"motion loss ([0-9.]+)")).First(m => m.Success);
        double value = double.Parse(loss.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(value > 0.1 && value < 10, $"motion loss {value}");
        Assert.True(File.Exists(Path.Combine(SyntheticTrainer.HeadsFolder(first), SyntheticTrainer.MotionHeadFile)));

        Assert.Contains(log, l => l.Contains("on the final hidden state", StringComparison.Ordinal));
        var accuracy = log.Select(l => System.Text.RegularExpressions.Regex.Match(l, @"motion accuracy ([0-9.]+) ?%")).First(m => m.Success);
        double hits = double.Parse(accuracy.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(hits, 0, 100);

        // Continued, with the head on the first layer's output instead.
        var again = new List<string>();
        new SyntheticTrainer(options with { Seed = 6, InitialModel = first, MotionLayer = 1 }, again.Add).Train(second);
        Assert.Contains(again, l => l.Contains($"motion head from {Path.Combine(SyntheticTrainer.HeadsFolder(first), SyntheticTrainer.MotionHeadFile)} on layer 1", StringComparison.Ordinal));
        Assert.Contains(again, l => l.Contains("motion loss", StringComparison.Ordinal));

        // Without the objective there is no motion head and no motion loss.
        var plain = new List<string>();
        new SyntheticTrainer(options with { MotionLossWeight = 0, InitialModel = first }, plain.Add).Train(Path.Combine(_temp, "plain"));
        Assert.DoesNotContain(plain, l => l.Contains("motion loss", StringComparison.Ordinal) || l.Contains("motion head", StringComparison.Ordinal));
        Assert.False(File.Exists(Path.Combine(SyntheticTrainer.HeadsFolder(Path.Combine(_temp, "plain")), SyntheticTrainer.MotionHeadFile)));
        Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { MotionLossWeight = -1 }));
        Assert.Contains("MotionLayer (0)", Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { MotionLayer = 0 })).Message, StringComparison.Ordinal);
        var tooDeep = Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { MotionLayer = 99, InitialModel = first }).Train(Path.Combine(_temp, "deep")));
        Assert.Contains("MotionLayer (99)", tooDeep.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QuantizedCacheInTheLoop_TrainsAndValidatesThroughTheCache()
    {
        var options = new TrainingOptions { Steps = 2, BatchSize = 2, WarmupSteps = 1, EvaluateEvery = 2, ValidationSamples = 5, Seed = 5, MaxVideoFrames = 16, QuantizedCacheShare = 1, Families = VidKV.AI.Training.Synthetic.FamilyMix.Parse("Counting,MotionDirection") };
        var log = new List<string>();
        new SyntheticTrainer(options, log.Add).Train(Path.Combine(_temp, "qat"));

        Assert.Contains(log, l => l.Contains("vidkv-1.5/1.58 cache in the loop for 100 % of batch groups, read by every query", StringComparison.Ordinal));
        var validation = Assert.Single(log, l => l.Contains("validation", StringComparison.Ordinal));
        Assert.Contains("answers decoded through the Compact vidkv-1.5/1.58 cache", validation, StringComparison.Ordinal);
        Assert.Contains("everything after the video through it", validation, StringComparison.Ordinal);

        var answers = new List<string>();
        new SyntheticTrainer(options with { QuantizedCacheQueries = CacheQueries.Answers, EvaluateEvery = 0 }, answers.Add).Train(Path.Combine(_temp, "qat-answers"));
        Assert.Contains(answers, l => l.Contains("read by the answers' queries", StringComparison.Ordinal));

        var afterVideo = new List<string>();
        new SyntheticTrainer(options with { QuantizedCacheQueries = CacheQueries.AfterVideo }, afterVideo.Add).Train(Path.Combine(_temp, "qat-after-video"));
        Assert.Contains(afterVideo, l => l.Contains("read by every query after the video", StringComparison.Ordinal));
        Assert.Matches(@"answer loss [0-9]+\.[0-9]+", afterVideo.First(l => l.StartsWith("step 1:", StringComparison.Ordinal)));
        Assert.Matches(@"everything after the video through it, as from a remembered video, [0-9]", Assert.Single(afterVideo, l => l.Contains("validation", StringComparison.Ordinal)));
        var mixed = new List<string>();
        new SyntheticTrainer(options with { QuantizedCacheQueries = CacheQueries.AnswersOrAfterVideo, EvaluateEvery = 0 }, mixed.Add).Train(Path.Combine(_temp, "qat-mixed"));
        Assert.Contains(mixed, l => l.Contains("the answers' queries in half of them and every query after the video in the other half", StringComparison.Ordinal));
        Assert.Matches(@"answer loss [0-9]+\.[0-9]+", mixed.First(l => l.StartsWith("step 1:", StringComparison.Ordinal)));
        Assert.Matches(@"answer loss [0-9]+\.[0-9]+", answers.First(l => l.StartsWith("step 1:", StringComparison.Ordinal)));
        Assert.Matches(@"answer loss [0-9]+\.[0-9]+", log.First(l => l.StartsWith("step 1:", StringComparison.Ordinal)));

        Assert.Contains("QuantizedCacheShare (1.5)", Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { QuantizedCacheShare = 1.5 })).Message, StringComparison.Ordinal);
        Assert.Contains("'fp16'", Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { QuantizedCachePreset = "fp16" })).Message, StringComparison.Ordinal);
        Assert.Contains("'nope'", Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { QuantizedCachePreset = "nope" })).Message, StringComparison.Ordinal);

        // Scaled ternary values in the loop (both profiles' round trips), and a clear refusal where the preset has none.
        var scaled = new List<string>();
        new SyntheticTrainer(options with { QuantizedCacheQueries = CacheQueries.AfterVideo, QuantizedCacheScaledTernary = true }, scaled.Add).Train(Path.Combine(_temp, "qat-scaled"));
        Assert.Contains(scaled, l => l.Contains("vidkv-1.5/1.58 (scaled ternary) cache in the loop", StringComparison.Ordinal));
        Assert.Matches(@"answer loss [0-9]+\.[0-9]+", scaled.First(l => l.StartsWith("step 1:", StringComparison.Ordinal)));
        Assert.Contains("'vidkv-2'", Assert.Throws<ArgumentException>(() => new SyntheticTrainer(options with { QuantizedCachePreset = "vidkv-2", QuantizedCacheScaledTernary = true })).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ValidationQuestions_AreTheSameForEveryRun_AndNeverTestOrTrainingQuestions()
    {
        // The evaluator scores the test part of seed base 0; training reads seeds from 10,000,000 up.
        var validation = Enumerable.Range(0, 100_000).Select(SyntheticTrainer.ValidationSeed).ToHashSet();
        var test = Enumerable.Range(0, 100_000).Select(i => SyntheticDataset.SeedOf(0, DatasetSplit.Test, i));
        Assert.Equal(100_000, validation.Count);
        Assert.DoesNotContain(test, validation.Contains);
        Assert.True(validation.Max() < SyntheticTrainer.SyntheticSeed(1, 0), $"validation reaches seed {validation.Max()}");
        Assert.Equal(SyntheticDataset.SeedOf(0, DatasetSplit.Validation, 7), SyntheticTrainer.ValidationSeed(7));
    }

    [Fact]
    public void InitialModel_ThatIsNotACheckpoint_IsRejectedByName()
    {
        var ex = Assert.Throws<ArgumentException>(() => new SyntheticTrainer(new TrainingOptions { InitialModel = _temp }));
        Assert.Contains(_temp, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Encode_WithFurtherQuestions_PutsEachAnswerWhereItsSpanSays()
    {
        var tokenizer = SmallTokenizer();
        var config = VidKvTinyRecipe.ModelConfig(tokenizer);
        int endOfTurn = tokenizer.TokenToId("<|im_end|>")!.Value;
        var sample = VidKV.AI.Training.Synthetic.SceneGenerator.Generate(12, new VidKV.AI.Training.Synthetic.SceneOptions { Family = VidKV.AI.Training.Synthetic.QuestionFamily.Counting, MaxFrames = 40 });
        var more = VidKV.AI.Training.Synthetic.SceneQuestions.About(sample).Take(3).ToList();

        var (ids, answers) = SyntheticTrainer.Encode(tokenizer, config, sample, endOfTurn, more: more);

        Assert.Equal(4, answers.Count);
        var expected = new[] { sample.Answer }.Concat(more.Select(q => q.Answer)).ToList();
        for (int i = 0; i < answers.Count; i++)
        {
            var (start, end) = answers[i];
            Assert.Equal(endOfTurn, ids[end - 1]);
            Assert.Equal(expected[i], tokenizer.Decode(ids.Skip(start).Take(end - 1 - start)).Trim());
        }

        // The video appears once, in the first turn; the later turns hold the further questions.
        Assert.Equal(VidKV.AI.Backend.Vision.VideoFramePreprocessor.CountVideoTokens(VidKvTinyRecipe.FramesFor(sample), config.Vision.PatchesPerSide), ids.Count(id => id == config.VideoTokenId));
        string text = tokenizer.Decode(ids.Where(id => id != config.VideoTokenId));
        Assert.All(more, q => Assert.Contains(q.Question, text, StringComparison.Ordinal));
        Assert.Equal(ids.Count, answers[^1].End);
    }

    [Fact]
    public void PreparedBatch_GroupsByLength_AndPutsEveryIdFrameAndAnswerWhereTheStepReadsThem()
    {
        var tokenizer = SmallTokenizer();
        var config = VidKvTinyRecipe.ModelConfig(tokenizer);
        int endOfTurn = tokenizer.TokenToId("<|im_end|>")!.Value;
        var options = new VidKV.AI.Training.Synthetic.SceneOptions { Width = 96, Height = 96, MaxFrames = 64 };
        var samples = new[] { 3, 4, 5, 6 }.Select(seed => SceneGenerator.Generate(seed, options with
        {
            Family = seed == 4 ? VidKV.AI.Training.Synthetic.QuestionFamily.Needle : VidKV.AI.Training.Synthetic.QuestionFamily.Attribute,
        })).Select(x => PreparedSample.Create(x, s => SyntheticTrainer.Encode(tokenizer, config, s, endOfTurn), 96, VidKvTinyRecipe.CellsPerSide)).ToList();

        using var batch = PreparedBatch.Create(samples, config.VideoTokenId, 96);

        Assert.Equal(4, batch.Samples);
        Assert.Equal(samples.Sum(p => p.AnswerTokens), batch.AnswerTokens);
        Assert.Equal(2, batch.Groups.Count);
        Assert.Equal(3, batch.Groups[0].Samples.Count);
        Assert.Equal(VidKV.AI.Training.Synthetic.QuestionFamily.Needle, Assert.Single(batch.Groups[1].Samples).Sample.Family);
        foreach (var g in batch.Groups)
        {
            Assert.Equal(new long[] { g.Samples.Sum(p => p.Frames), 96, 96, 3 }, g.Frames.shape);
            Assert.Equal(g.Samples.Count * g.Longest, g.Ids.Length);
            Assert.Equal(g.Samples.Sum(p => p.Ids.Count(id => id == config.VideoTokenId)), g.VideoPositions.Length);
            Assert.All(g.VideoPositions, i => Assert.Equal(config.VideoTokenId, g.Ids[i]));

            // The pooled tokens: every placeholder but each video's closing newline, one per visual target.
            Assert.Equal(g.Color.Length, g.CellPositions.Length);
            Assert.Equal(g.Motion.Length, g.CellPositions.Length);
            Assert.Equal(g.VideoPositions.Except(g.CellPositions).Count(), g.Samples.Count);
            int placeholders = 0;
            for (int b = 0; b < g.Samples.Count; b++)
            {
                placeholders += g.Samples[b].Ids.Count(id => id == config.VideoTokenId);
                Assert.DoesNotContain(g.VideoPositions[placeholders - 1], g.CellPositions);
            }

            Assert.Equal(g.AnswerRows.Length, g.AnswerTargets.Length);
            for (int k = 0; k < g.AnswerRows.Length; k++)
            {
                Assert.Equal(g.AnswerTargets[k], g.Ids[g.AnswerRows[k] + 1]);
            }

            // The decode rows are the answer rows less each answer's first (predicted from the prompt, as at prefill).
            int answers = g.Samples.Sum(p => p.Answers.Count);
            Assert.Equal(g.AnswerRows.Length - answers, g.DecodeRows.Length);
            Assert.Subset(g.AnswerRows.ToHashSet(), g.DecodeRows.ToHashSet());
            var firstRows = g.Samples.SelectMany((p, b) => p.Answers.Select(a => ((long)b * g.Longest) + a.Start - 1)).ToHashSet();
            Assert.Empty(firstRows.Intersect(g.DecodeRows));

            // The frames of the second sample start right after the first's.
            var second = g.Samples.Count > 1 ? g.Samples[1] : null;
            if (second is not null)
            {
                byte[] firstPixels = g.Frames.narrow(0, g.Samples[0].Frames, 1).data<byte>().ToArray();
                Assert.Equal(second.Rgb.Take(96 * 96 * 3), firstPixels);
            }
        }
    }

    [Fact]
    public void AfterVideoRows_MarkEveryRealPositionAfterEachSamplesVideo_AndNoPadding()
    {
        var tokenizer = SmallTokenizer();
        var config = VidKvTinyRecipe.ModelConfig(tokenizer);
        int endOfTurn = tokenizer.TokenToId("<|im_end|>")!.Value;
        var options = new VidKV.AI.Training.Synthetic.SceneOptions { Width = 96, Height = 96, MaxFrames = 32, Family = VidKV.AI.Training.Synthetic.QuestionFamily.Attribute };

        // Three conversations of different lengths in one group: one with two further questions, two with their own only.
        var samples = new[] { 3, 5, 6 }.Select((seed, k) =>
        {
            var sample = SceneGenerator.Generate(seed, options);
            var more = k == 0 ? SceneQuestions.About(sample).Take(2).ToList() : [];
            return PreparedSample.Create(sample, s => SyntheticTrainer.Encode(tokenizer, config, s, endOfTurn, more: more), 96, VidKvTinyRecipe.CellsPerSide);
        }).ToList();
        using var batch = PreparedBatch.Create(samples, config.VideoTokenId, 96);
        var g = Assert.Single(batch.Groups);
        Assert.Contains(g.Samples, p => p.Ids.Count < g.Longest); // some rows are padded

        var expected = new HashSet<long>();
        for (int b = 0; b < g.Samples.Count; b++)
        {
            var ids = g.Samples[b].Ids;
            int videoEnd = ids.Select((id, t) => (id, t)).Last(x => x.id == config.VideoTokenId).t + 1;
            Assert.True(videoEnd < ids.Count);
            var positions = g.Samples[b].AfterVideoPositions(config.VideoTokenId).ToList();
            Assert.Equal(Enumerable.Range(videoEnd, ids.Count - videoEnd), positions);

            // Every answer (and the question when it follows the video) lies after the video.
            Assert.All(g.Samples[b].Answers, a => Assert.True(a.Start - 1 >= videoEnd));
            expected.UnionWith(positions.Select(t => ((long)b * g.Longest) + t));
        }

        Assert.Equal(expected.Order(), g.AfterVideoRows.Order());
        Assert.Subset(g.AfterVideoRows.ToHashSet(), g.DecodeRows.ToHashSet()); // the answers' decode steps read the cache
        Assert.Subset(g.AfterVideoRows.ToHashSet(), g.AnswerRows.ToHashSet()); // and so does the prompt's last position
        Assert.Empty(g.VideoPositions.Intersect(g.AfterVideoRows));

        // The question's tokens follow the video (the chat template puts media first) and read the cache too.
        Assert.All(g.Samples, p => Assert.True(p.Answers[0].Start - p.AfterVideoPositions(config.VideoTokenId).First() > 3));

        // The mask the step hands the decoder: true exactly there, per sample, false on the video, the text before it and the padding.
        using var scope = NewDisposeScope();
        var mask = SyntheticTrainer.RowMask(g.AfterVideoRows, g.Samples.Count, g.Longest, CPU);
        Assert.Equal(new long[] { g.Samples.Count, g.Longest }, mask.shape);
        bool[] flat = mask.data<bool>().ToArray();
        for (int i = 0; i < flat.Length; i++)
        {
            int b = i / g.Longest, t = i % g.Longest;
            Assert.Equal(expected.Contains(i), flat[i]);
            if (t >= g.Samples[b].Ids.Count || t <= g.Samples[b].Ids.ToList().LastIndexOf(config.VideoTokenId))
            {
                Assert.False(flat[i], $"sample {b} position {t}");
            }
        }

        Assert.Empty(new PreparedSample(samples[0].Sample, [1, 2, 3], [(1, 3)], [], 0, samples[0].Targets).AfterVideoPositions(config.VideoTokenId));
    }

    /// <summary>The recipe's tokenizer, learnt from 300 samples, written to and read from a temporary folder.</summary>
    private VidKV.AI.Backend.Text.Qwen2Tokenizer SmallTokenizer()
    {
        string dir = Directory.CreateDirectory(Path.Combine(_temp, $"tok-{Guid.NewGuid():N}")).FullName;
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), VidKvTinyRecipe.TrainTokenizer(samples: 300));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), VidKvTinyRecipe.TokenizerConfigJson());
        return VidKV.AI.Backend.Text.Qwen2Tokenizer.FromDirectory(dir);
    }
}
