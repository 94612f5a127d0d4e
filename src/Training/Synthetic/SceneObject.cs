namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// One object of a synthetic scene: what it looks like, where it starts, how it moves and when it is visible.
/// </summary>
/// <remarks>
/// Coordinates are fractions of the frame: <c>(0, 0)</c> is the top-left corner, <c>(1, 1)</c> the bottom-right, so a
/// scene renders at any resolution. The object is visible on frames <see cref="AppearFrame"/> to
/// <see cref="DisappearFrame"/> - 1 and moves <see cref="Speed"/> per frame from <c>(X, Y)</c>, its centre on the
/// frame it appears. Immutable and thread-safe; values are checked when a <see cref="SceneSpec"/> is built.
/// </remarks>
/// <param name="Shape">The shape.</param>
/// <param name="Color">The colour; in generated scenes no two objects share a colour.</param>
/// <param name="Size">The size.</param>
/// <param name="X">Horizontal centre on <see cref="AppearFrame"/>, as a fraction of the frame's width.</param>
/// <param name="Y">Vertical centre on <see cref="AppearFrame"/>, as a fraction of the frame's height (0 is the top).</param>
/// <param name="Motion">The direction of motion, or <see cref="MotionDirection.None"/>.</param>
/// <param name="Speed">Distance moved per frame, as a fraction of the frame's width (left, right) or height (up, down); 0 when static.</param>
/// <param name="AppearFrame">The first frame on which the object is visible.</param>
/// <param name="DisappearFrame">The first frame after <paramref name="AppearFrame"/> on which it is no longer visible (exclusive end).</param>
public sealed record SceneObject(
    ShapeKind Shape,
    SceneColor Color,
    ObjectSize Size,
    double X,
    double Y,
    MotionDirection Motion,
    double Speed,
    int AppearFrame,
    int DisappearFrame)
{
    /// <summary>"{colour} {shape}", how questions and answers refer to the object (e.g. "red circle").</summary>
    public string Description => SceneVocabulary.Describe(Color, Shape);

    /// <summary>The radius of the circle that bounds the shape, as a fraction of the frame's shorter side.</summary>
    public double Radius => ShapeGeometry.Radius(Size);

    /// <summary>The number of frames on which the object is visible.</summary>
    public int VisibleFrames => DisappearFrame - AppearFrame;

    /// <summary>Whether the object is drawn on a frame.</summary>
    /// <param name="frameIndex">A frame index.</param>
    /// <returns><see langword="true"/> when <see cref="AppearFrame"/> &lt;= <paramref name="frameIndex"/> &lt; <see cref="DisappearFrame"/>.</returns>
    public bool IsVisible(int frameIndex) => frameIndex >= AppearFrame && frameIndex < DisappearFrame;

    /// <summary>The object's centre on a frame (extrapolated along its motion for frames on which it is not visible).</summary>
    /// <param name="frameIndex">A frame index.</param>
    /// <returns>The centre, as fractions of the frame's width and height.</returns>
    public (double X, double Y) PositionAt(int frameIndex)
    {
        double d = Speed * (frameIndex - AppearFrame);
        return Motion switch
        {
            MotionDirection.Left => (X - d, Y),
            MotionDirection.Right => (X + d, Y),
            MotionDirection.Up => (X, Y - d),
            MotionDirection.Down => (X, Y + d),
            _ => (X, Y),
        };
    }
}
