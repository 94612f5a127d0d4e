using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

public sealed class SceneQuestionsTests
{
    [Fact]
    public void NeedleVideos_AnswerBothNeedleQuestions_OtherVideosNone()
    {
        foreach (var family in Enum.GetValues<QuestionFamily>())
        {
            foreach (var sample in Samples(family))
            {
                var needleForms = SceneQuestions.About(sample with { Question = "-" }).Where(q => q.Form is QuestionForm.NeedleWhat or QuestionForm.NeedleWhen).ToList();
                Assert.Equal(family == QuestionFamily.Needle ? 2 : 0, needleForms.Count);
            }
        }
    }

    private static IEnumerable<VideoQaSample> Samples(QuestionFamily family) =>
        Enumerable.Range(0, 60).Select(seed => SceneGenerator.Generate(seed, new SceneOptions { Family = family, MaxFrames = 128 }));

    [Theory]
    [InlineData(QuestionFamily.Attribute)]
    [InlineData(QuestionFamily.Counting)]
    [InlineData(QuestionFamily.MotionDirection)]
    [InlineData(QuestionFamily.Needle)]
    public void TheGeneratorsOwnQuestion_IsDerivedWithTheSameAnswer(QuestionFamily family)
    {
        foreach (var sample in Samples(family))
        {
            // With another question on the sample, its own question is no longer left out and must be derived.
            var derived = SceneQuestions.About(sample with { Question = "-" });
            Assert.Contains(new SceneQuestion(sample.Form, sample.Question, sample.Answer), derived);
            Assert.DoesNotContain(SceneQuestions.About(sample), q => q.Question == sample.Question);
        }
    }

    [Fact]
    public void TemporalQuestionsOfTheGenerator_AreDerivedWithTheSameAnswer_InEitherOrder()
    {
        foreach (var sample in Samples(QuestionFamily.TemporalOrder))
        {
            var pair = sample.Choices.ToHashSet();
            var derived = SceneQuestions.About(sample with { Question = "-" })
                .Where(q => q.Form == QuestionForm.TemporalOrder && pair.All(d => q.Question.Contains($"the {d}", StringComparison.Ordinal)))
                .ToList();
            var only = Assert.Single(derived);
            Assert.Equal(sample.Answer, only.Answer);
        }
    }

    [Fact]
    public void DerivedQuestions_AreDistinct_AnswerableFromTheScene_AndInTheTasksVocabulary()
    {
        foreach (var family in Enum.GetValues<QuestionFamily>())
        {
            foreach (var sample in Samples(family))
            {
                var questions = SceneQuestions.About(sample);
                Assert.Equal(questions.Count, questions.Select(q => q.Question).Distinct().Count());
                Assert.All(questions, q => Assert.Contains(q.Answer, SceneVocabulary.AllAnswers));
                var objects = sample.Scene.Objects;
                Assert.Contains(new SceneQuestion(QuestionForm.Counting, "How many objects appear in the video?", SceneVocabulary.CountWord(objects.Count)), SceneQuestions.About(sample with { Question = "-" }));
                foreach (var q in questions.Where(q => q.Form == QuestionForm.TemporalOrder))
                {
                    var first = objects.Single(o => o.Description == q.Answer);
                    var other = objects.Single(o => o.Description != q.Answer && q.Question.Contains($"the {o.Description}", StringComparison.Ordinal));
                    Assert.True(first.AppearFrame + Math.Max(1, sample.FrameCount / 8) <= other.AppearFrame, $"{sample}: {q}");
                }

                foreach (var q in questions.Where(q => q.Form == QuestionForm.MotionDirection))
                {
                    var o = objects.Single(o => q.Question.Contains($"the {o.Description} ", StringComparison.Ordinal));
                    var (x0, y0) = o.PositionAt(o.AppearFrame);
                    var (x1, y1) = o.PositionAt(o.DisappearFrame - 1);
                    string seen = Math.Abs(x1 - x0) > Math.Abs(y1 - y0) ? (x1 > x0 ? "right" : "left") : (y1 > y0 ? "down" : "up");
                    Assert.Equal(seen, q.Answer);
                    Assert.True(Math.Abs(x1 - x0) + Math.Abs(y1 - y0) >= 0.2 - 1e-9);
                }

                foreach (var q in questions.Where(q => q.Form == QuestionForm.AttributeColor))
                {
                    Assert.Single(objects, o => q.Question == $"What colour is the {SceneVocabulary.Name(o.Shape)}?");
                }
            }
        }
    }
}
