using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary>
/// Reads a rendered clip back: for every frame and palette colour, the pixels that hold exactly that colour (an
/// object's fully covered pixels). Answers are checked against these, not against the scene description.
/// </summary>
internal sealed class PixelProbe
{
    /// <summary>Fewer exact pixels than this in a frame are not counted as the colour being visible there.</summary>
    public const int MinPixels = 4;

    private readonly byte[] _rgb;
    private readonly RgbColor _background;
    private readonly int[,] _count;
    private readonly double[,] _sumX;
    private readonly double[,] _sumY;

    public PixelProbe(SceneSpec scene, int width, int height)
        : this(SceneRenderer.RenderRgb(scene, width, height), scene.FrameCount, width, height, scene.Background)
    {
    }

    public PixelProbe(byte[] rgb, int frames, int width, int height, RgbColor background)
    {
        _rgb = rgb;
        _background = background;
        FrameCount = frames;
        Width = width;
        Height = height;
        var lookup = ScenePalette.Colors.ToDictionary(c => Pack(ScenePalette.Rgb(c)), c => (int)c);
        int colors = ScenePalette.Colors.Count;
        _count = new int[frames, colors];
        _sumX = new double[frames, colors];
        _sumY = new double[frames, colors];
        for (int f = 0; f < frames; f++)
        {
            int offset = f * width * height * 3;
            for (int y = 0; y < height; y++)
            {
                for (int x = 0; x < width; x++)
                {
                    int p = offset + (((y * width) + x) * 3);

                    // Background channels stay below 80, every palette colour has one of 220 or more.
                    if (Math.Max(rgb[p], Math.Max(rgb[p + 1], rgb[p + 2])) >= 200 && lookup.TryGetValue((rgb[p] << 16) | (rgb[p + 1] << 8) | rgb[p + 2], out int c))
                    {
                        _count[f, c]++;
                        _sumX[f, c] += x + 0.5;
                        _sumY[f, c] += y + 0.5;
                    }
                }
            }
        }
    }

    public int FrameCount { get; }

    /// <summary>A probe of one frame only (frame 0 of the probe).</summary>
    public static PixelProbe OfFrame(SceneSpec scene, int frame, int width, int height)
    {
        byte[] rgb = new byte[width * height * 3];
        SceneRenderer.RenderFrameRgb(scene, frame, width, height, rgb);
        return new PixelProbe(rgb, 1, width, height, scene.Background);
    }

    public int Width { get; }

    public int Height { get; }

    public int Count(int frame, SceneColor color) => _count[frame, (int)color];

    public bool Visible(int frame, SceneColor color) => _count[frame, (int)color] >= MinPixels;

    /// <summary>The frames on which the colour is visible, in order.</summary>
    public int[] FramesWith(SceneColor color) => [.. Enumerable.Range(0, FrameCount).Where(f => Visible(f, color))];

    /// <summary>The colours visible on at least one frame.</summary>
    public SceneColor[] ColorsSeen() => [.. ScenePalette.Colors.Where(c => FramesWith(c).Length > 0)];

    /// <summary>Any palette colour with at least one exact pixel anywhere (stricter than <see cref="ColorsSeen"/>).</summary>
    public SceneColor[] ColorsWithAnyPixel() => [.. ScenePalette.Colors.Where(c => Enumerable.Range(0, FrameCount).Any(f => _count[f, (int)c] > 0))];

    public (double X, double Y) Centroid(int frame, SceneColor color)
    {
        int n = _count[frame, (int)color];
        return (_sumX[frame, (int)color] / n, _sumY[frame, (int)color] / n);
    }

    /// <summary>
    /// The pixels at least half covered by a colour on a frame: exact pixels, and edge pixels that lie on the line
    /// from the background to the colour (within the noise) at least halfway to the colour. The 50 % threshold of the
    /// antialiased image is the best pixel approximation of the true outline.
    /// </summary>
    public List<(int X, int Y)> Pixels(int frame, SceneColor color)
    {
        var rgb = ScenePalette.Rgb(color);
        int[] bg = [_background.R, _background.G, _background.B];
        int[] c = [rgb.R, rgb.G, rgb.B];
        double norm = Enumerable.Range(0, 3).Sum(i => (double)(c[i] - bg[i]) * (c[i] - bg[i]));
        var pixels = new List<(int X, int Y)>();
        int offset = frame * Width * Height * 3;
        for (int y = 0; y < Height; y++)
        {
            for (int x = 0; x < Width; x++)
            {
                int p = offset + (((y * Width) + x) * 3);
                double alpha = 0;
                for (int i = 0; i < 3; i++)
                {
                    alpha += (_rgb[p + i] - bg[i]) * (double)(c[i] - bg[i]);
                }

                alpha /= norm;
                if (alpha < 0.5)
                {
                    continue;
                }

                bool onLine = true;
                for (int i = 0; i < 3; i++)
                {
                    onLine &= Math.Abs(_rgb[p + i] - (bg[i] + (alpha * (c[i] - bg[i])))) <= 16;
                }

                if (onLine)
                {
                    pixels.Add((x, y));
                }
            }
        }

        return pixels;
    }

    /// <summary>
    /// Tells the five shapes apart from a pixel mask by features independent of the renderer's geometry, measured in the
    /// mask's bounding box: a triangle pointing up is wide at the bottom and narrow at the top; a square fills its
    /// corners; a circle fills most of the box but not the corners; a cross spans the whole box through its centre,
    /// both ways; a star does neither.
    /// </summary>
    public static ShapeKind ClassifyShape(IReadOnlyList<(int X, int Y)> pixels)
    {
        int minX = pixels.Min(p => p.X), maxX = pixels.Max(p => p.X), minY = pixels.Min(p => p.Y), maxY = pixels.Max(p => p.Y);
        int w = maxX - minX + 1, h = maxY - minY + 1;
        var set = pixels.ToHashSet();
        double Band(int y0, int y1) => pixels.Count(p => p.Y >= y0 && p.Y <= y1) / (double)(w * (y1 - y0 + 1));
        int quarterH = Math.Max(1, h / 4), quarterW = Math.Max(1, w / 4);
        double top = Band(minY, minY + quarterH - 1), bottom = Band(maxY - quarterH + 1, maxY);
        if (bottom >= 0.6 && top < 0.4)
        {
            return ShapeKind.Triangle;
        }

        int corners = pixels.Count(p => (p.X < minX + quarterW || p.X > maxX - quarterW) && (p.Y < minY + quarterH || p.Y > maxY - quarterH));
        if (corners >= 0.6 * 4 * quarterW * quarterH)
        {
            return ShapeKind.Square;
        }

        double fill = pixels.Count / (double)(w * h);
        if (fill >= 0.62)
        {
            return ShapeKind.Circle;
        }

        int cy = (int)Math.Round(pixels.Average(p => p.Y)), cx = (int)Math.Round(pixels.Average(p => p.X));
        double row = Enumerable.Range(minX, w).Count(x => set.Contains((x, cy))) / (double)w;
        double column = Enumerable.Range(minY, h).Count(y => set.Contains((cx, y))) / (double)h;
        return Math.Min(row, column) >= 0.85 ? ShapeKind.Cross : ShapeKind.Star;
    }

    /// <summary>The size whose bounding radius best explains a mask's area for a known shape.</summary>
    public static ObjectSize ClassifySize(IReadOnlyList<(int X, int Y)> pixels, ShapeKind shape, int shorterSide)
    {
        // Area of each unit shape (bounding radius 1).
        double unitArea = shape switch
        {
            ShapeKind.Circle => Math.PI * 0.85 * 0.85,
            ShapeKind.Square => 1.4 * 1.4,
            ShapeKind.Triangle => 3 * Math.Sqrt(3) / 4,
            ShapeKind.Star => 10 * 0.5 * 0.45 * Math.Sin(Math.PI / 5),
            _ => (2 * 1.9 * 0.6) - (0.6 * 0.6),
        };
        double radius = Math.Sqrt(pixels.Count / unitArea) / shorterSide;
        (ObjectSize Size, double Radius)[] sizes = [(ObjectSize.Small, 0.07), (ObjectSize.Medium, 0.095), (ObjectSize.Large, 0.12)];
        return sizes.MinBy(s => Math.Abs(Math.Log(radius / s.Radius))).Size;
    }

    private static int Pack(RgbColor c) => (c.R << 16) | (c.G << 8) | c.B;
}
