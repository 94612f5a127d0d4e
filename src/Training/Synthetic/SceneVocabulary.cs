using System.Globalization;

namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// The words of the synthetic video QA task: the name of every shape, colour, size and direction, and every answer
/// string a question can have (lower case, one or two words).
/// </summary>
/// <remarks>Thread-safe: all members are immutable.</remarks>
public static class SceneVocabulary
{
    /// <summary>The shape names, in <see cref="ShapeKind"/> order: circle, square, triangle, star, cross.</summary>
    public static IReadOnlyList<string> Shapes { get; } = ["circle", "square", "triangle", "star", "cross"];

    /// <summary>The colour names, in <see cref="SceneColor"/> order: red, green, blue, yellow, purple, orange, white, cyan.</summary>
    public static IReadOnlyList<string> Colors { get; } = ["red", "green", "blue", "yellow", "purple", "orange", "white", "cyan"];

    /// <summary>The size names, in <see cref="ObjectSize"/> order: small, medium, large.</summary>
    public static IReadOnlyList<string> Sizes { get; } = ["small", "medium", "large"];

    /// <summary>The answers of motion questions: left, right, up, down (the moving <see cref="MotionDirection"/> values, in order).</summary>
    public static IReadOnlyList<string> Directions { get; } = ["left", "right", "up", "down"];

    /// <summary>The answers of counting questions, as words: "one" (index 0) to "eight" (index 7).</summary>
    public static IReadOnlyList<string> Counts { get; } = ["one", "two", "three", "four", "five", "six", "seven", "eight"];

    /// <summary>The answers of needle "when" questions: start, middle, end (the first, second and last third of the video).</summary>
    public static IReadOnlyList<string> Times { get; } = ["start", "middle", "end"];

    /// <summary>Every object description, "{colour} {shape}" (e.g. "red circle"), colour-major: 40 strings.</summary>
    public static IReadOnlyList<string> Objects { get; } =
        [.. Enum.GetValues<SceneColor>().SelectMany(c => Enum.GetValues<ShapeKind>().Select(s => Describe(c, s)))];

    /// <summary>Every answer string any question can have, without duplicates (81 strings).</summary>
    public static IReadOnlyList<string> AllAnswers { get; } =
        [.. Colors.Concat(Shapes).Concat(Sizes).Concat(Directions).Concat(Counts).Concat(Times).Concat(Objects).Distinct(StringComparer.Ordinal)];

    /// <summary>The name of a shape.</summary>
    /// <param name="shape">A shape.</param>
    /// <returns>"circle", "square", "triangle", "star" or "cross".</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="shape"/> is not defined.</exception>
    public static string Name(ShapeKind shape) => Shapes[Check(shape, nameof(shape))];

    /// <summary>The name of a colour.</summary>
    /// <param name="color">A colour.</param>
    /// <returns>One of <see cref="Colors"/>.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="color"/> is not defined.</exception>
    public static string Name(SceneColor color) => Colors[Check(color, nameof(color))];

    /// <summary>The name of a size.</summary>
    /// <param name="size">A size.</param>
    /// <returns>"small", "medium" or "large".</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="size"/> is not defined.</exception>
    public static string Name(ObjectSize size) => Sizes[Check(size, nameof(size))];

    /// <summary>The name of a direction of motion.</summary>
    /// <param name="direction">A direction.</param>
    /// <returns>"left", "right", "up", "down", or "none" for <see cref="MotionDirection.None"/> (never an answer).</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="direction"/> is not defined.</exception>
    public static string Name(MotionDirection direction) =>
        Check(direction, nameof(direction)) == 0 ? "none" : Directions[(int)direction - 1];

    /// <summary>The description an object is referred to by in questions and answers: "{colour} {shape}".</summary>
    /// <param name="color">The object's colour.</param>
    /// <param name="shape">The object's shape.</param>
    /// <returns>For example "red circle".</returns>
    /// <exception cref="ArgumentOutOfRangeException">A value is not defined.</exception>
    public static string Describe(SceneColor color, ShapeKind shape) => Name(color) + " " + Name(shape);

    /// <summary>The answer word of a count.</summary>
    /// <param name="count">1 to 8.</param>
    /// <returns>"one" to "eight".</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="count"/> is outside 1 to 8.</exception>
    public static string CountWord(int count)
    {
        if (count < 1 || count > Counts.Count)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, $"A count must be 1 to {Counts.Count}.");
        }

        return Counts[count - 1];
    }

    /// <summary>The third of a video a frame lies in: frames [0, F/3) are the start, [F/3, 2F/3) the middle, the rest the end.</summary>
    /// <param name="frameIndex">The frame, 0 to <paramref name="frameCount"/> - 1.</param>
    /// <param name="frameCount">The video's length in frames, at least 1.</param>
    /// <returns>0 (start), 1 (middle) or 2 (end): <c>3 * frameIndex / frameCount</c>, rounded down.</returns>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside its range.</exception>
    public static int ThirdOf(int frameIndex, int frameCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        if (frameIndex < 0 || frameIndex >= frameCount)
        {
            throw new ArgumentOutOfRangeException(nameof(frameIndex), frameIndex, $"A frame index must be 0 to {frameCount - 1} for {frameCount} frames.");
        }

        return (int)(3L * frameIndex / frameCount);
    }

    private static int Check<T>(T value, string name)
        where T : struct, Enum
    {
        if (!Enum.IsDefined(value))
        {
            throw new ArgumentOutOfRangeException(
                name,
                value,
                string.Create(CultureInfo.InvariantCulture, $"Unknown {typeof(T).Name} {Convert.ToInt32(value, CultureInfo.InvariantCulture)}; allowed: {string.Join(", ", Enum.GetNames<T>())}."));
        }

        return Convert.ToInt32(value, CultureInfo.InvariantCulture);
    }
}
