using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training;

/// <summary>
/// Dense targets for the auxiliary visual objective: for every frame given to the model and every cell of its pooled
/// token grid (a 96-pixel frame in 12-pixel patches pooled 2x is 4x4 cells of 24 pixels), the colour, shape and size of
/// the object whose centre lies in the cell (or "none"), and where that centre is: in the cell, or in the frame
/// (<see cref="PositionTarget"/>). The renderer knows the
/// scene, so the targets are exact. They teach the vision tower and projector what the language model must read from
/// each token long before the answer loss alone would.
/// </summary>
internal sealed class VisualTargets
{
    /// <summary>Classes of the colour target: the palette, then "no object".</summary>
    public static readonly int ColorClasses = ScenePalette.Colors.Count + 1;

    /// <summary>Classes of the shape target.</summary>
    public static readonly int ShapeClasses = Enum.GetValues<ShapeKind>().Length;

    /// <summary>Classes of the size target.</summary>
    public static readonly int SizeClasses = Enum.GetValues<ObjectSize>().Length;

    /// <summary>Classes of the motion target: <see cref="MotionDirection"/>'s values (none, left, right, up, down).</summary>
    public static readonly int MotionClasses = Enum.GetValues<MotionDirection>().Length;

    /// <summary>Outputs of the auxiliary head: colour, shape, size logits and the centre's position (2).</summary>
    public static int HeadOutputs => ColorClasses + ShapeClasses + SizeClasses + 2;

    /// <summary>The value of shape and size targets in cells without an object (ignored by the loss).</summary>
    public const long Ignore = -100;

    private VisualTargets(long[] color, long[] shape, long[] size, float[] offset, long[] motion)
    {
        Color = color;
        Shape = shape;
        Size = size;
        Offset = offset;
        Motion = motion;
    }

    /// <summary>Colour class per cell (frame-major, then row-major cells); <c>ColorClasses - 1</c> for no object.</summary>
    public long[] Color { get; }

    /// <summary>Shape class per cell, <see cref="Ignore"/> without an object.</summary>
    public long[] Shape { get; }

    /// <summary>Size class per cell, <see cref="Ignore"/> without an object.</summary>
    public long[] Size { get; }

    /// <summary>The centre's position in the cell or in the frame, x then y in [0, 1), per cell (0 without an object).</summary>
    public float[] Offset { get; }

    /// <summary>
    /// The motion of the cell's object (<see cref="MotionClasses"/>), for the decoder's motion objective: known in a
    /// frame only once the object was seen in an earlier frame given (the decoder reads the video causally), else
    /// <see cref="Ignore"/>, as without an object.
    /// </summary>
    public long[] Motion { get; }

    /// <summary>Targets for the given frames of a scene on a grid of <paramref name="cellsPerSide"/>².</summary>
    public static VisualTargets Compute(SceneSpec scene, IReadOnlyList<long> frames, int cellsPerSide, PositionTarget position = PositionTarget.InCell)
    {
        int cells = cellsPerSide * cellsPerSide;
        long[] color = new long[frames.Count * cells];
        long[] shape = new long[color.Length];
        long[] size = new long[color.Length];
        float[] offset = new float[color.Length * 2];
        long[] motion = new long[color.Length];
        Array.Fill(color, ColorClasses - 1);
        Array.Fill(shape, Ignore);
        Array.Fill(size, Ignore);
        Array.Fill(motion, Ignore);
        bool inFrame = position == PositionTarget.InFrame;
        var seen = new HashSet<SceneObject>();
        double[] nearest = new double[color.Length];
        Array.Fill(nearest, double.MaxValue);
        for (int i = 0; i < frames.Count; i++)
        {
            int frame = (int)frames[i];
            var visible = scene.Objects.Where(o => o.IsVisible(frame)).OrderBy(o => o.Color).ToList();
            foreach (var o in visible)
            {
                var (x, y) = o.PositionAt(frame);
                double gx = Math.Clamp(x * cellsPerSide, 0, cellsPerSide - 1e-9), gy = Math.Clamp(y * cellsPerSide, 0, cellsPerSide - 1e-9);
                int cell = (i * cells) + ((int)gy * cellsPerSide) + (int)gx;

                // Two centres in one cell: the one nearer the cell's middle is the target.
                double fx = gx - Math.Floor(gx), fy = gy - Math.Floor(gy);
                double distance = ((fx - 0.5) * (fx - 0.5)) + ((fy - 0.5) * (fy - 0.5));
                if (distance >= nearest[cell])
                {
                    continue;
                }

                nearest[cell] = distance;
                color[cell] = (int)o.Color;
                shape[cell] = (int)o.Shape;
                size[cell] = (int)o.Size;
                motion[cell] = seen.Contains(o) ? (int)o.Motion : Ignore;
                offset[2 * cell] = (float)(inFrame ? gx / cellsPerSide : fx);
                offset[(2 * cell) + 1] = (float)(inFrame ? gy / cellsPerSide : fy);
            }

            seen.UnionWith(visible);
        }

        return new VisualTargets(color, shape, size, offset, motion);
    }
}

/// <summary>Where the auxiliary visual objective asks each pooled token to place its object's centre.</summary>
public enum PositionTarget
{
    /// <summary>Inside the token's cell (x and y in [0, 1) of the cell): runs 1 to 4 of the built-in model.</summary>
    InCell,

    /// <summary>
    /// In the whole frame (x and y in [0, 1) of the frame): each token then carries where on screen its object is, which
    /// motion direction compares between frames, instead of leaving the cell's place to the token's position in the sequence.
    /// </summary>
    InFrame,
}
