namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// Generates synthetic video question-answering samples, each fully determined by a seed and the options: a scene of
/// coloured shapes that move, appear and disappear, and a question whose short answer is right by construction.
/// </summary>
/// <remarks>
/// <para>
/// Question templates (<see cref="QuestionForm"/>) and answers (<see cref="SceneVocabulary"/>):
/// attribute: "What colour is the {shape}?" (a colour; asked only when no other object has that shape),
/// "What shape is the {colour} object?" (a shape), "What size is the {colour} {shape}?" (small, medium, large);
/// counting: "How many objects appear in the video?" (a number word, "one" to "eight": every object that is visible on
/// any frame counts); motion: "Which way does the {colour} {shape} move?" (left, right, up, down);
/// temporal order: "Which appeared first, the {colour} {shape} or the {colour} {shape}?" (the earlier one's
/// "{colour} {shape}"); needle: "What appeared briefly?" (the needle's "{colour} {shape}") and
/// "When did the {colour} {shape} appear?" (start, middle or end: the third of the video it is visible in).
/// </para>
/// <para>
/// Scenes: 1 to <see cref="SceneOptions.MaxObjects"/> objects (2 or more for temporal order and needle), each of its own
/// colour, never overlapping, inside the frame whenever visible. Ordinary objects are visible for the whole video or
/// for at least a third of it; a moving object travels a fifth of the frame or more (the subject of a motion question
/// 0.35 or more). Needle videos are at least <see cref="SceneOptions.NeedleMinFrames"/> long; the needle is static and
/// visible for 2 to 6 frames (by default) inside one third, the other objects for at least half the video.
/// </para>
/// <para>Stateless and thread-safe; the output depends only on the seed and the options, on every platform.</para>
/// </remarks>
public static class SceneGenerator
{
    private const int SceneAttempts = 1000;

    /// <summary>Generates the sample of a seed.</summary>
    /// <param name="seed">Any integer; the same seed and options always give an equal sample.</param>
    /// <param name="options">The settings; <see langword="null"/> for the defaults.</param>
    /// <returns>The sample.</returns>
    /// <exception cref="ArgumentException"><paramref name="options"/> is invalid; the message names the setting.</exception>
    /// <exception cref="InvalidOperationException">No overlap-free scene was found (only conceivable for extreme settings).</exception>
    public static VideoQaSample Generate(int seed, SceneOptions? options = null)
    {
        options ??= new SceneOptions();
        options.Validate();
        var random = new SceneRandom(seed);
        var family = options.Family ?? options.FamilyMix.Pick(random.NextDouble());
        for (int attempt = 0; attempt < SceneAttempts; attempt++)
        {
            if (new SceneBuilder(random, options).TryBuild(seed, family) is { } sample)
            {
                return sample;
            }
        }

        throw new InvalidOperationException($"Seed {seed}: no scene without overlapping objects was found for {family} in {SceneAttempts} attempts; lower MaxObjects ({options.MaxObjects}).");
    }
}
