namespace VidKV.AI.Training.Synthetic;

/// <summary>The shapes in unit coordinates: the bounding circle has radius 1, y points down.</summary>
/// <remarks>Vertices are literal constants (no trigonometry at run time), so rasterization is bit-identical everywhere.</remarks>
internal static class ShapeGeometry
{
    private const double CircleRadius = 0.85;
    private const double SquareHalfSide = 0.7;
    private const double CrossHalfLength = 0.95;
    private const double CrossHalfWidth = 0.3;

    // Apex up; circumradius 1.
    private static readonly double[] TriangleX = [0, 0.8660254037844386, -0.8660254037844386];
    private static readonly double[] TriangleY = [-1, 0.5, 0.5];

    // Outer radius 1 at -90 + 72k degrees, inner radius 0.45 halfway between (fatter than a pentagram, for small sizes).
    private static readonly double[] StarX =
        [0, 0.2645033635316129, 0.9510565162951535, 0.4279754323328192, 0.5877852522924731, 0, -0.5877852522924731, -0.4279754323328192, -0.9510565162951535, -0.2645033635316129];

    private static readonly double[] StarY =
        [-1, -0.3640576474687264, -0.3090169943749474, 0.1390576474687264, 0.8090169943749474, 0.45, 0.8090169943749474, 0.1390576474687264, -0.3090169943749474, -0.3640576474687264];

    /// <summary>The bounding radius of a size, as a fraction of the frame's shorter side.</summary>
    public static double Radius(ObjectSize size) => size switch
    {
        ObjectSize.Small => 0.07,
        ObjectSize.Medium => 0.095,
        _ => 0.12,
    };

    /// <summary>Whether the unit shape covers the point (u, v).</summary>
    public static bool Contains(ShapeKind shape, double u, double v) => shape switch
    {
        ShapeKind.Circle => (u * u) + (v * v) <= CircleRadius * CircleRadius,
        ShapeKind.Square => Math.Abs(u) <= SquareHalfSide && Math.Abs(v) <= SquareHalfSide,
        ShapeKind.Triangle => InPolygon(TriangleX, TriangleY, u, v),
        ShapeKind.Star => InPolygon(StarX, StarY, u, v),
        _ => (Math.Abs(u) <= CrossHalfLength && Math.Abs(v) <= CrossHalfWidth) || (Math.Abs(u) <= CrossHalfWidth && Math.Abs(v) <= CrossHalfLength),
    };

    // Even-odd crossing test.
    private static bool InPolygon(double[] xs, double[] ys, double u, double v)
    {
        bool inside = false;
        for (int i = 0, j = xs.Length - 1; i < xs.Length; j = i++)
        {
            if ((ys[i] > v) != (ys[j] > v) && u < ((xs[j] - xs[i]) * (v - ys[i]) / (ys[j] - ys[i])) + xs[i])
            {
                inside = !inside;
            }
        }

        return inside;
    }
}
