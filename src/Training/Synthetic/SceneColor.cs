namespace VidKV.AI.Training.Synthetic;

/// <summary>The colour of a synthetic scene object: a small palette of clearly distinct colours (see <see cref="ScenePalette"/>).</summary>
public enum SceneColor
{
    /// <summary>Red ("red").</summary>
    Red,

    /// <summary>Green ("green").</summary>
    Green,

    /// <summary>Blue ("blue").</summary>
    Blue,

    /// <summary>Yellow ("yellow").</summary>
    Yellow,

    /// <summary>Purple ("purple").</summary>
    Purple,

    /// <summary>Orange ("orange").</summary>
    Orange,

    /// <summary>White ("white").</summary>
    White,

    /// <summary>Cyan ("cyan").</summary>
    Cyan,
}
