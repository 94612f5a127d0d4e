namespace VidKV.AI.Training.Synthetic;

/// <summary>Draws one frame of a scene into rgb24 bytes: the seeded noisy background, then every visible object, antialiased.</summary>
internal static class FrameRasterizer
{
    // 4x4 samples per edge pixel: 17 coverage levels.
    private const int Grid = 4;
    private const int Samples = Grid * Grid;

    public static void Draw(SceneSpec scene, int frameIndex, int width, int height, Span<byte> rgb)
    {
        FillBackground(scene, frameIndex, width, height, rgb);
        foreach (var o in scene.Objects)
        {
            if (o.IsVisible(frameIndex))
            {
                DrawObject(o, frameIndex, width, height, rgb);
            }
        }
    }

    private static void FillBackground(SceneSpec scene, int frameIndex, int width, int height, Span<byte> rgb)
    {
        var bg = scene.Background;
        int level = scene.NoiseLevel;
        uint span = (uint)((2 * level) + 1);
        uint seed = ((uint)scene.NoiseSeed * 0x9E3779B1u) ^ ((uint)frameIndex * 0x85EBCA77u);
        int pixels = width * height;
        for (int i = 0, p = 0; i < pixels; i++, p += 3)
        {
            int n = 0;
            if (level > 0)
            {
                uint h = seed ^ ((uint)i * 0xC2B2AE3Du);
                h ^= h >> 15;
                h *= 0x2C1B3C6Du;
                h ^= h >> 12;
                h *= 0x297A2D39u;
                h ^= h >> 15;
                n = (int)(h % span) - level;
            }

            // Channels stay in [0, 72]: base <= 40, noise <= 32.
            rgb[p] = (byte)Math.Max(0, bg.R + n);
            rgb[p + 1] = (byte)Math.Max(0, bg.G + n);
            rgb[p + 2] = (byte)Math.Max(0, bg.B + n);
        }
    }

    private static void DrawObject(SceneObject o, int frameIndex, int width, int height, Span<byte> rgb)
    {
        var (fx, fy) = o.PositionAt(frameIndex);
        double cx = fx * width, cy = fy * height;
        double radius = o.Radius * Math.Min(width, height);
        double inverse = 1 / radius;
        var color = ScenePalette.Rgb(o.Color);
        int x0 = Math.Max(0, (int)Math.Floor(cx - radius)), x1 = Math.Min(width - 1, (int)Math.Ceiling(cx + radius));
        int y0 = Math.Max(0, (int)Math.Floor(cy - radius)), y1 = Math.Min(height - 1, (int)Math.Ceiling(cy + radius));
        for (int y = y0; y <= y1; y++)
        {
            double nearY = Math.Max(0, Math.Max(y - cy, cy - (y + 1)));
            double top = (y - cy) * inverse, bottom = (y + 1 - cy) * inverse;
            for (int x = x0; x <= x1; x++)
            {
                // A pixel wholly outside the bounding circle is skipped: every shape lies inside it.
                double nearX = Math.Max(0, Math.Max(x - cx, cx - (x + 1)));
                if ((nearX * nearX) + (nearY * nearY) > radius * radius)
                {
                    continue;
                }

                // All four corners inside: fully covered (exact for the convex shapes and the cross; for the star a
                // notch narrower than a pixel could be missed, which is invisible).
                double left = (x - cx) * inverse, right = (x + 1 - cx) * inverse;
                int covered = ShapeGeometry.Contains(o.Shape, left, top) && ShapeGeometry.Contains(o.Shape, right, top)
                    && ShapeGeometry.Contains(o.Shape, left, bottom) && ShapeGeometry.Contains(o.Shape, right, bottom)
                    ? Samples
                    : 0;
                for (int sy = 0; sy < Grid && covered < Samples; sy++)
                {
                    double v = (y + ((sy + 0.5) / Grid) - cy) * inverse;
                    for (int sx = 0; sx < Grid; sx++)
                    {
                        double u = (x + ((sx + 0.5) / Grid) - cx) * inverse;
                        if (ShapeGeometry.Contains(o.Shape, u, v))
                        {
                            covered++;
                        }
                    }
                }

                if (covered == 0)
                {
                    continue;
                }

                int p = ((y * width) + x) * 3;
                if (covered == Samples)
                {
                    rgb[p] = color.R;
                    rgb[p + 1] = color.G;
                    rgb[p + 2] = color.B;
                }
                else
                {
                    rgb[p] = Blend(rgb[p], color.R, covered);
                    rgb[p + 1] = Blend(rgb[p + 1], color.G, covered);
                    rgb[p + 2] = Blend(rgb[p + 2], color.B, covered);
                }
            }
        }
    }

    private static byte Blend(byte under, byte over, int covered) =>
        (byte)(((under * (Samples - covered)) + (over * covered) + (Samples / 2)) / Samples);
}
