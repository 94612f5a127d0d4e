namespace VidKV.AI.Training.Synthetic;

/// <summary>The RGB values of the scene colours and of the background's range.</summary>
/// <remarks>
/// Every palette colour has a channel of at least 220 and the background never exceeds
/// <see cref="MaxBackgroundChannel"/> + the noise level (at most 40 + 32), so an object's fully covered pixels are
/// exactly its palette value and can never be mistaken for background. Thread-safe: all members are immutable.
/// </remarks>
public static class ScenePalette
{
    /// <summary>The largest channel value of a scene's base background colour before noise.</summary>
    public const int MaxBackgroundChannel = 40;

    private static readonly RgbColor[] Values =
    [
        new(230, 40, 40),   // red
        new(40, 200, 60),   // green
        new(50, 90, 255),   // blue
        new(250, 220, 40),  // yellow
        new(160, 60, 220),  // purple
        new(255, 140, 20),  // orange
        new(245, 245, 245), // white
        new(40, 220, 230),  // cyan
    ];

    /// <summary>Every scene colour, in enum order.</summary>
    public static IReadOnlyList<SceneColor> Colors { get; } = Array.AsReadOnly(Enum.GetValues<SceneColor>());

    /// <summary>The RGB value a fully covered pixel of an object of this colour has.</summary>
    /// <param name="color">A scene colour.</param>
    /// <returns>The colour's RGB value.</returns>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="color"/> is not a defined <see cref="SceneColor"/>.</exception>
    public static RgbColor Rgb(SceneColor color)
    {
        if (!Enum.IsDefined(color))
        {
            throw new ArgumentOutOfRangeException(nameof(color), color, $"Unknown scene colour {(int)color}; allowed: {string.Join(", ", Colors)}.");
        }

        return Values[(int)color];
    }
}
