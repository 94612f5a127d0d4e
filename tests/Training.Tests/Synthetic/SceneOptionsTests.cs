using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary><see cref="SceneOptions.Validate"/> and <see cref="SceneVocabulary"/>.</summary>
public sealed class SceneOptionsTests
{
    public static TheoryData<SceneOptions, string, string> BadOptions => new()
    {
        { new SceneOptions { Width = 8 }, "Width", "Width is 8; allowed: 16 to 1024" },
        { new SceneOptions { MinFrames = 4 }, "MinFrames", "MinFrames is 4; allowed: 8 to 1024" },
        { new SceneOptions { MinFrames = 64, MaxFrames = 32 }, "MaxFrames", "MaxFrames is 32; allowed: MinFrames (64) to 1024" },
        { new SceneOptions { MaxObjects = 9 }, "MaxObjects", "MaxObjects is 9; allowed: 2 to 8" },
        { new SceneOptions { NoiseLevel = 40 }, "NoiseLevel", "NoiseLevel is 40; allowed: 0 to 32" },
        { new SceneOptions { NeedleMaxVisibleFrames = 10 }, "NeedleMinFrames", "at least 8 x NeedleMaxVisibleFrames = 80" },
        { new SceneOptions { MaxFrames = 48 }, "MaxFrames", "needle questions need videos of NeedleMinFrames (64)" },
        { new SceneOptions { Family = QuestionFamily.Needle, MaxFrames = 32 }, "MaxFrames", "NeedleMinFrames (64)" },
    };

    [Theory]
    [MemberData(nameof(BadOptions))]
    public void Validate_BadSetting_ThrowsNamingItAndWhatIsAllowed(SceneOptions options, string name, string message)
    {
        var e = Assert.Throws<ArgumentException>(options.Validate);

        Assert.Equal(name, e.ParamName);
        Assert.Contains(message, e.Message);
        Assert.Throws<ArgumentException>(() => SceneGenerator.Generate(0, options));
    }

    [Fact]
    public void Validate_ShortVideosWithoutNeedle_Accepted()
    {
        var options = new SceneOptions { MaxFrames = 16, FamilyMix = new FamilyMix(new Dictionary<QuestionFamily, double> { [QuestionFamily.Counting] = 1 }) };

        options.Validate();
        Assert.InRange(SceneGenerator.Generate(1, options).FrameCount, 8, 16);
    }

    [Fact]
    public void Vocabulary_AllAnswers_ListsEveryAnswerOnce()
    {
        Assert.Equal(8 + 5 + 3 + 4 + 8 + 3 + 40, SceneVocabulary.AllAnswers.Count);
        Assert.Equal(SceneVocabulary.AllAnswers.Count, SceneVocabulary.AllAnswers.Distinct().Count());
        Assert.All(SceneVocabulary.AllAnswers, a => Assert.Equal(a.ToLowerInvariant(), a));
        Assert.Equal("purple star", SceneVocabulary.Describe(SceneColor.Purple, ShapeKind.Star));
        Assert.Equal("up", SceneVocabulary.Name(MotionDirection.Up));
        Assert.Equal(2, SceneVocabulary.ThirdOf(66, 99));
        Assert.Equal(1, SceneVocabulary.ThirdOf(65, 99));
    }
}
