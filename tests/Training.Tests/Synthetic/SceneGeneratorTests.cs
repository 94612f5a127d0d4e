using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary><see cref="SceneGenerator"/>: determinism, ranges, and questions that are unambiguous by construction.</summary>
public sealed class SceneGeneratorTests
{
    private const string GoldenSample =
        "#42 (38 frames) Which appeared first, the white triangle or the cyan square? -> white triangle | "
        + "38 frames: cyan square [18, 34) up; red triangle [0, 38) right; white triangle [9, 30) static | 46C9E67F1F0AEF9C";

    private static readonly QuestionFamily[] Families = Enum.GetValues<QuestionFamily>();

    public static TheoryData<QuestionFamily> AllFamilies => [.. Families];

    [Theory]
    [MemberData(nameof(AllFamilies))]
    public void Generate_SameSeed_EqualSampleAndRenderedBytes(QuestionFamily family)
    {
        var options = new SceneOptions { Family = family };
        for (int seed = 0; seed < 10; seed++)
        {
            var a = SceneGenerator.Generate(seed, options);
            var b = SceneGenerator.Generate(seed, options);

            Assert.Equal(a, b);
            Assert.Equal(a.Scene, b.Scene);
            Assert.Equal(a.Question, b.Question);
            Assert.Equal(a.Answer, b.Answer);
            Assert.Equal(SceneRenderer.RenderRgb(a.Scene, 48, 32), SceneRenderer.RenderRgb(b.Scene, 48, 32));
        }
    }

    [Fact]
    public void Generate_DifferentSeeds_DifferentScenes()
    {
        var samples = Enumerable.Range(0, 500).Select(seed => SceneGenerator.Generate(seed)).ToArray();

        Assert.Equal(samples.Length, samples.Select(s => s.Scene).Distinct().Count());
        Assert.True(samples.Select(s => s.Question + "|" + s.Answer).Distinct().Count() > 100);
        Assert.NotEqual(SceneRenderer.RenderRgb(samples[0].Scene, 32, 32), SceneRenderer.RenderRgb(samples[1].Scene, 32, 32));
    }

    [Fact]
    public void Generate_PinnedSeed_SameSampleAsWhenWritten()
    {
        // Pins the generator and renderer across versions and platforms: retraining on "the same" data must mean the same bytes.
        var sample = SceneGenerator.Generate(42);
        byte[] rgb = SceneRenderer.RenderRgb(sample.Scene, 96, 96);
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(rgb))[..16];

        Assert.Equal(GoldenSample, $"{sample} | {sample.Scene} | {hash}");
    }

    [Fact]
    public void Generate_DefaultOptions_FrameCountsWithin8To256AndNeedleVideosLong()
    {
        var samples = Enumerable.Range(0, 1000).Select(seed => SceneGenerator.Generate(seed)).ToArray();

        Assert.All(samples, s => Assert.InRange(s.FrameCount, 8, 256));
        Assert.All(samples.Where(s => s.Family == QuestionFamily.Needle), s => Assert.InRange(s.FrameCount, 64, 256));
        Assert.Contains(samples, s => s.FrameCount < 16);
        Assert.Contains(samples, s => s.FrameCount > 200);

        // Octaves [8, 15], [16, 31], [32, 63], [64, 127], [128, 256] equally likely; no length stands out.
        var ordinary = samples.Where(s => s.Family != QuestionFamily.Needle).ToArray();
        foreach (var (lo, hi) in new[] { (8, 15), (16, 31), (32, 63), (64, 127), (128, 256) })
        {
            Assert.InRange(ordinary.Count(s => s.FrameCount >= lo && s.FrameCount <= hi) / (double)ordinary.Length, 0.13, 0.27);
        }

        Assert.True(samples.Count(s => s.FrameCount == 256) < 10, "the longest length is no more likely than its neighbours");
        Assert.All(samples, s => Assert.Equal((96, 96), (s.Width, s.Height)));
    }

    [Fact]
    public void Generate_CustomFrameRange_Respected()
    {
        var options = new SceneOptions { MinFrames = 16, MaxFrames = 24, FamilyMix = new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Counting] = 1, [QuestionFamily.TemporalOrder] = 1 }) };

        var samples = Enumerable.Range(0, 300).Select(seed => SceneGenerator.Generate(seed, options)).ToArray();

        Assert.All(samples, s => Assert.InRange(s.FrameCount, 16, 24));
        Assert.All(samples, s => Assert.Contains(s.Family, new[] { QuestionFamily.Counting, QuestionFamily.TemporalOrder }));
    }

    [Fact]
    public void Generate_NoFamilyGiven_DrawsFamiliesInTheMixProportions()
    {
        var mix = new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Attribute] = 3, [QuestionFamily.Needle] = 1 });
        var balanced = Enumerable.Range(0, 1000).Select(seed => SceneGenerator.Generate(seed).Family).ToArray();
        var skewed = Enumerable.Range(0, 1000).Select(seed => SceneGenerator.Generate(seed, new SceneOptions { FamilyMix = mix }).Family).ToArray();

        // Within 3.2 standard deviations of the expected shares.
        foreach (var family in Families)
        {
            Assert.InRange(balanced.Count(f => f == family) / 1000.0, 0.16, 0.24);
        }

        Assert.InRange(skewed.Count(f => f == QuestionFamily.Attribute) / 1000.0, 0.705, 0.795);
        Assert.Equal(1000, skewed.Count(f => f is QuestionFamily.Attribute or QuestionFamily.Needle));
    }

    [Theory]
    [MemberData(nameof(AllFamilies))]
    public void Generate_AnyFamily_AnswerShortLowerCaseAndAmongChoices(QuestionFamily family)
    {
        var options = new SceneOptions { Family = family };
        var forms = new HashSet<QuestionForm>();
        for (int seed = 0; seed < 300; seed++)
        {
            var s = SceneGenerator.Generate(seed, options);
            forms.Add(s.Form);

            Assert.Equal(family, s.Family);
            Assert.Equal(s.Answer.ToLowerInvariant(), s.Answer);
            Assert.InRange(s.Answer.Split(' ').Length, 1, 2);
            Assert.Contains(s.Answer, s.Choices);
            Assert.Equal(s.Choices.Count, s.Choices.Distinct().Count());
            Assert.Contains(s.Answer, SceneVocabulary.AllAnswers);
            Assert.EndsWith("?", s.Question);
            Assert.All(s.SubjectIndices, i => Assert.InRange(i, 0, s.Scene.Objects.Count - 1));
        }

        QuestionForm[] expected = family switch
        {
            QuestionFamily.Attribute => [QuestionForm.AttributeColor, QuestionForm.AttributeShape, QuestionForm.AttributeSize],
            QuestionFamily.Counting => [QuestionForm.Counting],
            QuestionFamily.MotionDirection => [QuestionForm.MotionDirection],
            QuestionFamily.TemporalOrder => [QuestionForm.TemporalOrder],
            _ => [QuestionForm.NeedleWhat, QuestionForm.NeedleWhen],
        };
        Assert.Equal(expected, forms.Order());
    }

    [Theory]
    [MemberData(nameof(AllFamilies))]
    public void Generate_AnyFamily_QuestionUnambiguous(QuestionFamily family)
    {
        var options = new SceneOptions { Family = family };
        for (int seed = 0; seed < 300; seed++)
        {
            var s = SceneGenerator.Generate(seed, options);
            var objects = s.Scene.Objects;
            string context = s.ToString() + " | " + s.Scene;

            Assert.True(objects.Select(o => o.Color).Distinct().Count() == objects.Count, context);
            switch (s.Form)
            {
                case QuestionForm.AttributeColor:
                    var asked = Assert.Single(objects, o => s.Question == $"What colour is the {SceneVocabulary.Name(o.Shape)}?");
                    Assert.Equal(SceneVocabulary.Name(asked.Color), s.Answer);
                    break;
                case QuestionForm.AttributeShape:
                    Assert.Equal(SceneVocabulary.Name(Assert.Single(objects, o => s.Question == $"What shape is the {SceneVocabulary.Name(o.Color)} object?").Shape), s.Answer);
                    break;
                case QuestionForm.AttributeSize:
                    Assert.Equal(SceneVocabulary.Name(Assert.Single(objects, o => s.Question.Contains(o.Description, StringComparison.Ordinal)).Size), s.Answer);
                    break;
                case QuestionForm.Counting:
                    Assert.Equal(SceneVocabulary.CountWord(objects.Count), s.Answer);
                    Assert.InRange(objects.Count, 1, 6);
                    break;
                case QuestionForm.MotionDirection:
                    var mover = Assert.Single(objects, o => s.Question.Contains(o.Description, StringComparison.Ordinal));
                    Assert.Equal(SceneVocabulary.Name(mover.Motion), s.Answer);
                    Assert.True(mover.Speed * (mover.VisibleFrames - 1) >= 0.35 - 1e-9, context);
                    break;
                case QuestionForm.TemporalOrder:
                    var named = objects.Where(o => s.Question.Contains(o.Description, StringComparison.Ordinal)).ToArray();
                    Assert.Equal(2, named.Length);
                    Assert.NotEqual(named[0].AppearFrame, named[1].AppearFrame);
                    Assert.Equal(named.MinBy(o => o.AppearFrame)!.Description, s.Answer);
                    Assert.True(Math.Abs(named[0].AppearFrame - named[1].AppearFrame) >= Math.Max(1, s.FrameCount / 8), context);
                    break;
                case QuestionForm.NeedleWhat:
                case QuestionForm.NeedleWhen:
                    var needle = Assert.Single(objects, o => o.VisibleFrames <= options.NeedleMaxVisibleFrames);
                    Assert.InRange(needle.VisibleFrames, options.NeedleMinVisibleFrames, options.NeedleMaxVisibleFrames);
                    Assert.All(objects.Where(o => o != needle), o => Assert.True(o.VisibleFrames >= s.FrameCount / 2, context));
                    int third = SceneVocabulary.ThirdOf(needle.AppearFrame, s.FrameCount);
                    Assert.Equal(third, SceneVocabulary.ThirdOf(needle.DisappearFrame - 1, s.FrameCount));
                    Assert.Equal(s.Form == QuestionForm.NeedleWhat ? needle.Description : SceneVocabulary.Times[third], s.Answer);
                    Assert.Equal(objects.ToList().IndexOf(needle), Assert.Single(s.SubjectIndices));
                    break;
            }
        }
    }

    [Fact]
    public void Generate_AnySample_ObjectsInsideFrameAndNeverOverlap()
    {
        for (int seed = 0; seed < 300; seed++)
        {
            var scene = SceneGenerator.Generate(seed).Scene;
            for (int f = 0; f < scene.FrameCount; f++)
            {
                var visible = scene.VisibleAt(f).ToArray();
                foreach (var o in visible)
                {
                    var (x, y) = o.PositionAt(f);
                    Assert.InRange(x, o.Radius, 1 - o.Radius);
                    Assert.InRange(y, o.Radius, 1 - o.Radius);
                }

                for (int i = 0; i < visible.Length; i++)
                {
                    for (int j = i + 1; j < visible.Length; j++)
                    {
                        var (ax, ay) = visible[i].PositionAt(f);
                        var (bx, by) = visible[j].PositionAt(f);
                        Assert.True(Math.Sqrt(((ax - bx) * (ax - bx)) + ((ay - by) * (ay - by))) > visible[i].Radius + visible[j].Radius, $"seed {seed} frame {f}");
                    }
                }
            }
        }
    }

    [Fact]
    public void Generate_EightObjectsAllowed_CountingReachesEight()
    {
        var options = new SceneOptions { Family = QuestionFamily.Counting, MaxObjects = 8 };

        var counts = Enumerable.Range(0, 200).Select(seed => SceneGenerator.Generate(seed, options)).ToArray();

        Assert.Contains(counts, s => s.Answer == "eight");
        Assert.All(counts, s => Assert.Equal(SceneVocabulary.Counts, s.Choices));
    }
}
