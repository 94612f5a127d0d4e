namespace VidKV.AI.Training.Synthetic;

/// <summary>An 8-bit RGB colour.</summary>
/// <param name="R">Red, 0 to 255.</param>
/// <param name="G">Green, 0 to 255.</param>
/// <param name="B">Blue, 0 to 255.</param>
public readonly record struct RgbColor(byte R, byte G, byte B)
{
    /// <summary>The colour as <c>#rrggbb</c>.</summary>
    /// <returns>The hexadecimal form, lower case.</returns>
    public override string ToString() => $"#{R:x2}{G:x2}{B:x2}";
}
