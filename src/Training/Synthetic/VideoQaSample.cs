namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// One synthetic video question-answering sample: the scene (render it with <see cref="SceneRenderer"/>), the question,
/// its short answer, and the candidate answers for multiple-choice evaluation.
/// </summary>
/// <remarks>
/// Immutable and thread-safe. Equality compares every member, lists item by item, so two generations from the same
/// seed and options are equal.
/// </remarks>
public sealed record VideoQaSample
{
    /// <summary>The seed the sample was generated from.</summary>
    public required int Seed { get; init; }

    /// <summary>The question's family.</summary>
    public required QuestionFamily Family { get; init; }

    /// <summary>The question's template.</summary>
    public required QuestionForm Form { get; init; }

    /// <summary>The question, one English sentence ending in "?".</summary>
    public required string Question { get; init; }

    /// <summary>The answer: lower case, one or two words, one of <see cref="Choices"/> (see <see cref="SceneVocabulary"/>).</summary>
    public required string Answer { get; init; }

    /// <summary>
    /// The candidate answers of the question's form, containing <see cref="Answer"/>: every colour, shape, size,
    /// direction, count up to the scene's maximum, third or object description; for temporal order the two objects named.
    /// </summary>
    public required IReadOnlyList<string> Choices { get; init; }

    /// <summary>The video.</summary>
    public required SceneSpec Scene { get; init; }

    /// <summary>The default rendering width in pixels.</summary>
    public required int Width { get; init; }

    /// <summary>The default rendering height in pixels.</summary>
    public required int Height { get; init; }

    /// <summary>
    /// Indexes into <see cref="SceneSpec.Objects"/> of the objects the question is about: the one asked about; for
    /// temporal order the first-mentioned then the second; for counting every object.
    /// </summary>
    public required IReadOnlyList<int> SubjectIndices { get; init; }

    /// <summary>The number of frames of the video.</summary>
    public int FrameCount => Scene.FrameCount;

    /// <inheritdoc/>
    public bool Equals(VideoQaSample? other) =>
        other is not null
        && Seed == other.Seed
        && Family == other.Family
        && Form == other.Form
        && string.Equals(Question, other.Question, StringComparison.Ordinal)
        && string.Equals(Answer, other.Answer, StringComparison.Ordinal)
        && Choices.SequenceEqual(other.Choices, StringComparer.Ordinal)
        && Scene.Equals(other.Scene)
        && Width == other.Width
        && Height == other.Height
        && SubjectIndices.SequenceEqual(other.SubjectIndices);

    /// <inheritdoc/>
    public override int GetHashCode() => HashCode.Combine(Seed, Family, Form, Question, Answer, Scene, Width, Height);

    /// <summary>The question and answer with the seed and length, e.g. <c>"#12 (48 frames) How many objects appear in the video? -> three"</c>.</summary>
    /// <returns>A one-line summary.</returns>
    public override string ToString() => $"#{Seed} ({FrameCount} frames) {Question} -> {Answer}";
}
