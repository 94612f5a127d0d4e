namespace VidKV.AI.Training.Synthetic;

/// <summary>A question about a scene and its answer.</summary>
/// <param name="Form">What is asked.</param>
/// <param name="Question">The question, worded as <see cref="SceneGenerator"/> words it.</param>
/// <param name="Answer">The answer, one of <see cref="SceneVocabulary.AllAnswers"/>.</param>
public readonly record struct SceneQuestion(QuestionForm Form, string Question, string Answer);

/// <summary>
/// Every other question a generated sample's scene answers unambiguously, worded as the generator words them: the
/// number of objects; the shape of each object (colours are unique); the colour of each object whose shape is
/// unique; the size of each object; the direction of each object that travels at least a fifth of the frame; and
/// which of two objects appeared first when their appearances are at least an eighth of the video apart and both
/// stay for a third of it; for a needle video, what appeared briefly and in which third. Used to ask several questions about one video in training (one encoding of the video,
/// several answers to learn from).
/// </summary>
public static class SceneQuestions
{
    private const double MinTravel = 0.2;

    /// <summary>The questions <paramref name="sample"/>'s scene answers besides its own (which is left out).</summary>
    /// <param name="sample">A sample made by <see cref="SceneGenerator"/>.</param>
    /// <returns>The questions, in a fixed order.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sample"/> is null.</exception>
    public static IReadOnlyList<SceneQuestion> About(VideoQaSample sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        var objects = sample.Scene.Objects;
        int frames = sample.FrameCount;
        var questions = new List<SceneQuestion>
        {
            new(QuestionForm.Counting, "How many objects appear in the video?", SceneVocabulary.CountWord(objects.Count)),
        };
        foreach (var o in objects)
        {
            questions.Add(new(QuestionForm.AttributeShape, $"What shape is the {SceneVocabulary.Name(o.Color)} object?", SceneVocabulary.Name(o.Shape)));
            if (objects.Count(x => x.Shape == o.Shape) == 1)
            {
                questions.Add(new(QuestionForm.AttributeColor, $"What colour is the {SceneVocabulary.Name(o.Shape)}?", SceneVocabulary.Name(o.Color)));
            }

            questions.Add(new(QuestionForm.AttributeSize, $"What size is the {o.Description}?", SceneVocabulary.Name(o.Size)));
            if (o.Motion != MotionDirection.None && o.Speed * (o.VisibleFrames - 1) >= MinTravel)
            {
                questions.Add(new(QuestionForm.MotionDirection, $"Which way does the {o.Description} move?", SceneVocabulary.Name(o.Motion)));
            }
        }

        int gap = Math.Max(1, frames / 8), minVisible = Math.Max(Math.Min(frames, 4), (frames + 2) / 3);
        for (int i = 0; i < objects.Count; i++)
        {
            for (int j = i + 1; j < objects.Count; j++)
            {
                var (a, b) = (objects[i], objects[j]);
                if (Math.Abs(a.AppearFrame - b.AppearFrame) < gap || a.VisibleFrames < minVisible || b.VisibleFrames < minVisible)
                {
                    continue;
                }

                var first = a.AppearFrame < b.AppearFrame ? a : b;

                // Which object is named first alternates with the pair, so that order carries no answer.
                var (x, y) = ((i + j) % 2 == 0) ? (a, b) : (b, a);
                questions.Add(new(QuestionForm.TemporalOrder, $"Which appeared first, the {x.Description} or the {y.Description}?", first.Description));
            }
        }

        // A needle video answers both needle questions: what the brief object was, and in which third of the video.
        if (sample.Family == QuestionFamily.Needle && sample.SubjectIndices.Count == 1)
        {
            var needle = objects[sample.SubjectIndices[0]];
            questions.Add(new(QuestionForm.NeedleWhat, "What appeared briefly?", needle.Description));
            questions.Add(new(QuestionForm.NeedleWhen, $"When did the {needle.Description} appear?", SceneVocabulary.Times[Math.Min(2, 3 * needle.AppearFrame / frames)]));
        }

        questions.RemoveAll(q => q.Question == sample.Question);
        return questions;
    }
}
