namespace VidKV.AI.Training.Synthetic;

/// <summary>How a synthetic scene object moves: not at all, or in a straight line at constant speed.</summary>
/// <remarks>Directions are as seen on screen: <see cref="Up"/> is toward the top row of the frame.</remarks>
public enum MotionDirection
{
    /// <summary>The object stays where it is.</summary>
    None,

    /// <summary>Toward the left edge ("left").</summary>
    Left,

    /// <summary>Toward the right edge ("right").</summary>
    Right,

    /// <summary>Toward the top edge ("up").</summary>
    Up,

    /// <summary>Toward the bottom edge ("down").</summary>
    Down,
}
