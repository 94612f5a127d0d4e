namespace VidKV.AI.Training.Synthetic;

/// <summary>The shape of a synthetic scene object; the five are told apart at 64x64 pixels and above.</summary>
public enum ShapeKind
{
    /// <summary>A filled disc ("circle").</summary>
    Circle,

    /// <summary>An axis-aligned filled square ("square").</summary>
    Square,

    /// <summary>An equilateral triangle pointing up ("triangle").</summary>
    Triangle,

    /// <summary>A five-pointed star pointing up ("star").</summary>
    Star,

    /// <summary>A plus sign ("cross").</summary>
    Cross,
}
