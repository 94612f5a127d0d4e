using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary>
/// Every answer checked against the rendered pixels, not the scene description: what a model sees must support the
/// answer. Objects are found by their exact palette colours (fully covered pixels).
/// </summary>
public sealed class AnswerPixelTests
{
    private const int Side = 96;
    private const int Seeds = 40;

    // Videos up to 64 frames (128 for needles) keep the run short; lengths are covered by SceneGeneratorTests.
    private static IEnumerable<(VideoQaSample Sample, PixelProbe Probe)> Rendered(QuestionFamily family, int seeds = Seeds, int side = Side) =>
        Enumerable.Range(1000, seeds)
            .AsParallel().AsOrdered()
            .Select(seed => SceneGenerator.Generate(seed, new SceneOptions { Family = family, MaxFrames = family == QuestionFamily.Needle ? 128 : 64 }))
            .Select(s => (s, new PixelProbe(s.Scene, side, side)));

    private static SceneColor ColorNamed(string name) => ScenePalette.Colors.Single(c => SceneVocabulary.Name(c) == name);

    private static SceneColor ColorInQuestion(string question) =>
        ScenePalette.Colors.Single(c => question.Contains(SceneVocabulary.Name(c) + " ", StringComparison.Ordinal));

    [Fact]
    public void Counting_Answer_EqualsDistinctObjectColoursInPixels()
    {
        foreach (var (s, probe) in Rendered(QuestionFamily.Counting, 50, side: 64))
        {
            Assert.Equal(s.Answer, SceneVocabulary.CountWord(probe.ColorsSeen().Length));

            // No stray palette pixel anywhere: nothing else could be counted.
            Assert.Equal(probe.ColorsSeen(), probe.ColorsWithAnyPixel());
        }
    }

    [Fact]
    public void Attribute_Answer_MatchesPixelsOfTheObjectAsked()
    {
        foreach (var (s, probe) in Rendered(QuestionFamily.Attribute, 60))
        {
            switch (s.Form)
            {
                case QuestionForm.AttributeColor:
                    // The answer's colour is drawn as the shape asked about, and no other colour is.
                    var shape = Enum.GetValues<ShapeKind>().Single(k => s.Question == $"What colour is the {SceneVocabulary.Name(k)}?");
                    var shapesByColor = probe.ColorsSeen().ToDictionary(c => c, c => PixelProbe.ClassifyShape(probe.Pixels(probe.FramesWith(c)[0], c)));
                    Assert.Equal(ColorNamed(s.Answer), Assert.Single(shapesByColor, kv => kv.Value == shape).Key);
                    break;
                case QuestionForm.AttributeShape:
                    var color = ColorInQuestion(s.Question);
                    Assert.Equal(s.Answer, SceneVocabulary.Name(PixelProbe.ClassifyShape(probe.Pixels(probe.FramesWith(color)[0], color))));
                    break;
                default:
                    var sized = ColorInQuestion(s.Question);
                    var named = Enum.GetValues<ShapeKind>().Single(k => s.Question.EndsWith(" " + SceneVocabulary.Name(k) + "?", StringComparison.Ordinal));
                    Assert.Equal(s.Answer, SceneVocabulary.Name(PixelProbe.ClassifySize(probe.Pixels(probe.FramesWith(sized)[0], sized), named, Side)));
                    break;
            }
        }
    }

    [Fact]
    public void MotionDirection_Answer_IsTheWayTheColourCentroidMoves()
    {
        foreach (var (s, probe) in Rendered(QuestionFamily.MotionDirection, side: 64))
        {
            var color = ColorInQuestion(s.Question);
            int[] frames = probe.FramesWith(color);
            var (x0, y0) = probe.Centroid(frames[0], color);
            var (x1, y1) = probe.Centroid(frames[^1], color);
            double dx = x1 - x0, dy = y1 - y0;
            string seen = Math.Abs(dx) > Math.Abs(dy) ? (dx > 0 ? "right" : "left") : (dy > 0 ? "down" : "up");

            Assert.Equal(s.Answer, seen);
            Assert.True(Math.Max(Math.Abs(dx), Math.Abs(dy)) >= 0.3 * probe.Width, $"{s}: moved only ({dx:F1}, {dy:F1}) px");
            Assert.True(Math.Min(Math.Abs(dx), Math.Abs(dy)) < 1.0, $"{s}: drifted sideways ({dx:F1}, {dy:F1}) px");
        }
    }

    [Fact]
    public void TemporalOrder_Answer_IsTheColourThatAppearsInAnEarlierFrame()
    {
        foreach (var (s, probe) in Rendered(QuestionFamily.TemporalOrder))
        {
            var objects = s.Scene.Objects;
            var named = s.Choices.Select(d => objects.Single(o => o.Description == d)).ToArray();
            int[] firstFrames = [.. named.Select(o => probe.FramesWith(o.Color)[0])];

            Assert.NotEqual(firstFrames[0], firstFrames[1]);
            Assert.Equal(s.Answer, named[firstFrames[0] < firstFrames[1] ? 0 : 1].Description);
            Assert.All(named, o => Assert.Equal(o.AppearFrame, probe.FramesWith(o.Color)[0]));

            // The shapes named in the question are the shapes drawn in those colours.
            Assert.All(named, o => Assert.Equal(o.Shape, PixelProbe.ClassifyShape(probe.Pixels(probe.FramesWith(o.Color)[0], o.Color))));
        }
    }

    [Fact]
    public void Needle_Answer_IsTheOnlyColourSeenBrieflyAndInTheStatedThird()
    {
        var options = new SceneOptions();
        foreach (var (s, probe) in Rendered(QuestionFamily.Needle, 30))
        {
            var brief = probe.ColorsSeen().Where(c => probe.FramesWith(c).Length <= options.NeedleMaxVisibleFrames).ToArray();
            var needle = Assert.Single(brief);
            int[] frames = probe.FramesWith(needle);

            Assert.InRange(frames.Length, options.NeedleMinVisibleFrames, options.NeedleMaxVisibleFrames);
            Assert.Equal(frames.Length, frames[^1] - frames[0] + 1);
            Assert.All(probe.ColorsSeen().Where(c => c != needle), c => Assert.True(probe.FramesWith(c).Length >= s.FrameCount / 2, $"{s}: {c}"));
            string shape = SceneVocabulary.Name(PixelProbe.ClassifyShape(probe.Pixels(frames[0], needle)));
            if (s.Form == QuestionForm.NeedleWhat)
            {
                Assert.Equal(s.Answer, SceneVocabulary.Name(needle) + " " + shape);
            }
            else
            {
                Assert.Equal($"When did the {SceneVocabulary.Name(needle)} {shape} appear?", s.Question);
                Assert.All(frames, f => Assert.Equal(s.Answer, SceneVocabulary.Times[3 * f / s.FrameCount]));
            }
        }
    }

    [Fact]
    public void ClassifyShape_EveryObjectOfManyScenes_ShapeAndSizeRecognisedAt96Pixels()
    {
        // The shapes and sizes must stay distinguishable at the default resolution, every size included.
        int checkedObjects = 0;
        foreach (var s in Enumerable.Range(2000, 80).Select(seed => SceneGenerator.Generate(seed, new SceneOptions { Family = QuestionFamily.Counting })))
        {
            foreach (var o in s.Scene.Objects)
            {
                var probe = PixelProbe.OfFrame(s.Scene, o.AppearFrame, Side, Side);
                var pixels = probe.Pixels(0, o.Color);
                var (x, y) = o.PositionAt(o.AppearFrame);
                Assert.True(o.Shape == PixelProbe.ClassifyShape(pixels), $"{s}: {o.Size} {o.Description} at ({x:F2}, {y:F2})");
                Assert.True(o.Size == PixelProbe.ClassifySize(pixels, o.Shape, Side), $"{s}: {o.Size} {o.Description} at ({x:F2}, {y:F2})");
                checkedObjects++;
            }
        }

        Assert.True(checkedObjects > 200, $"{checkedObjects} objects");
    }
}
