using VidKV.AI.Training.Synthetic;
using static TorchSharp.torch;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary><see cref="SceneRenderer"/>: tensor layout, determinism, colours, and the whole-video render against single frames.</summary>
public sealed class SceneRendererTests
{
    private static SceneSpec OneObject(SceneObject o, int frames = 4, int noise = 0) => new(frames, new RgbColor(20, 20, 30), noise, 7, [o]);

    [Fact]
    public void Render_Sample_Uint8FramesHeightWidthRgbEqualToRawBytes()
    {
        using var scope = NewDisposeScope();
        var sample = SceneGenerator.Generate(3, new SceneOptions { Width = 80, Height = 48 });

        var frames = SceneRenderer.Render(sample);

        Assert.Equal(ScalarType.Byte, frames.dtype);
        Assert.Equal(new long[] { sample.FrameCount, 48, 80, 3 }, frames.shape);
        Assert.Equal(SceneRenderer.RenderRgb(sample.Scene, 80, 48), frames.data<byte>().ToArray());
        Assert.Equal(new long[] { sample.FrameCount, 32, 40, 3 }, SceneRenderer.Render(sample, 40, 32).shape);
    }

    [Fact]
    public void RenderFrame_AnyFrame_EqualsThatFrameOfTheClip()
    {
        using var scope = NewDisposeScope();
        var sample = SceneGenerator.Generate(11);
        var clip = SceneRenderer.Render(sample);

        foreach (int f in new[] { 0, sample.FrameCount / 2, sample.FrameCount - 1 })
        {
            var frame = SceneRenderer.RenderFrame(sample, f);
            Assert.Equal(new long[] { 96, 96, 3 }, frame.shape);
            Assert.Equal(clip[f].contiguous().data<byte>().ToArray(), frame.data<byte>().ToArray());
        }
    }

    [Fact]
    public void RenderRgb_ObjectInterior_ExactPaletteColourAndBackgroundDarkWithNoise()
    {
        var square = new SceneObject(ShapeKind.Square, SceneColor.Orange, ObjectSize.Large, 0.5, 0.5, MotionDirection.None, 0, 0, 4);
        var scene = OneObject(square, noise: 6);

        byte[] rgb = SceneRenderer.RenderRgb(scene, 100, 100);

        int centre = ((50 * 100) + 50) * 3;
        Assert.Equal(ScenePalette.Rgb(SceneColor.Orange), new RgbColor(rgb[centre], rgb[centre + 1], rgb[centre + 2]));
        int corner = 0;
        Assert.InRange(rgb[corner], 14, 26);
        Assert.InRange(rgb[corner + 2], 24, 36);
        var noise = Enumerable.Range(0, 100).Select(i => rgb[i * 3]).Distinct().Count();
        Assert.True(noise > 5, "the background noise varies");
        Assert.NotEqual(rgb.AsSpan(0, 300).ToArray(), rgb.AsSpan(100 * 100 * 3, 300).ToArray());
    }

    [Fact]
    public void RenderRgb_MovingObject_CentroidFollowsPositionAt()
    {
        var ball = new SceneObject(ShapeKind.Circle, SceneColor.Cyan, ObjectSize.Medium, 0.2, 0.4, MotionDirection.Right, 0.1, 1, 7);
        var scene = OneObject(ball, frames: 8);

        var probe = new PixelProbe(scene, 120, 100);

        Assert.Equal([1, 2, 3, 4, 5, 6], probe.FramesWith(SceneColor.Cyan));
        for (int f = 1; f < 7; f++)
        {
            var (x, y) = ball.PositionAt(f);
            var (cx, cy) = probe.Centroid(f, SceneColor.Cyan);
            Assert.Equal(x * 120, cx, 0.5);
            Assert.Equal(y * 100, cy, 0.5);
        }
    }

    [Fact]
    public void RenderRgb_NoBlendOfObjectAndBackground_EqualsAnotherPaletteColour()
    {
        // Antialiased edges must never be mistaken for another object's colour.
        var scene = SceneGenerator.Generate(5, new SceneOptions { Family = QuestionFamily.Counting, MaxObjects = 8 }).Scene;
        var probe = new PixelProbe(scene, 96, 96);

        Assert.Equal(scene.Objects.Select(o => o.Color).Order(), probe.ColorsWithAnyPixel().Order());
    }

    [Fact]
    public void RenderRgb_256Frames96x96_IsEachFrameRenderedAlone_InOrder()
    {
        // The whole video in one call (how the trainer and the media writer render) equals its frames rendered one at a
        // time, in order, and the frames are not all alike (the objects move).
        var sample = SceneGenerator.Generate(1, new SceneOptions { Family = QuestionFamily.Needle, MinFrames = 256, MaxFrames = 256 });
        byte[] rgb = SceneRenderer.RenderRgb(sample.Scene, 96, 96);

        const int frameBytes = 96 * 96 * 3;
        Assert.Equal(256 * frameBytes, rgb.Length);
        var frame = new byte[frameBytes];
        foreach (int f in new[] { 0, 1, 127, 255 })
        {
            SceneRenderer.RenderFrameRgb(sample.Scene, f, 96, 96, frame);
            Assert.True(frame.AsSpan().SequenceEqual(rgb.AsSpan(f * frameBytes, frameBytes)), $"frame {f} differs");
        }

        Assert.False(rgb.AsSpan(0, frameBytes).SequenceEqual(rgb.AsSpan(255 * frameBytes, frameBytes)), "the first and last frames are identical");
    }

    [Theory]
    [InlineData(15, 96, "width")]
    [InlineData(96, 1025, "height")]
    public void RenderRgb_SizeOutOfRange_ThrowsNamingTheSize(int width, int height, string name)
    {
        var scene = SceneGenerator.Generate(0).Scene;

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SceneRenderer.RenderRgb(scene, width, height));

        Assert.Equal(name, e.ParamName);
        Assert.Contains("16 to 1024", e.Message);
    }

    [Fact]
    public void RenderFrameRgb_FrameOutOfRange_Throws()
    {
        var scene = SceneGenerator.Generate(0).Scene;

        var e = Assert.Throws<ArgumentOutOfRangeException>(() => SceneRenderer.RenderFrameRgb(scene, scene.FrameCount, 32, 32, new byte[32 * 32 * 3]));

        Assert.Contains($"0 to {scene.FrameCount - 1}", e.Message);
    }

    [Fact]
    public void SceneSpec_InvalidObject_ThrowsNamingTheValue()
    {
        var late = new SceneObject(ShapeKind.Star, SceneColor.Red, ObjectSize.Small, 0.5, 0.5, MotionDirection.None, 0, 2, 9);
        var movingStatic = late with { DisappearFrame = 4, Speed = 0.1 };

        var e1 = Assert.Throws<ArgumentException>(() => OneObject(late, frames: 8));
        var e2 = Assert.Throws<ArgumentException>(() => OneObject(movingStatic, frames: 8));
        var e3 = Assert.Throws<ArgumentOutOfRangeException>(() => new SceneSpec(8, new RgbColor(90, 0, 0), 0, 0, []));

        Assert.Contains("[2, 9)", e1.Message);
        Assert.Contains("<= 8", e1.Message);
        Assert.Contains("speed 0.1", e2.Message);
        Assert.Contains("at most 40", e3.Message);
    }

    [Fact]
    public void SelectedFrames_EqualThoseFramesOfTheWholeRender_InTheOrderAsked()
    {
        var sample = SceneGenerator.Generate(21, new SceneOptions { Family = QuestionFamily.MotionDirection, MinFrames = 40, MaxFrames = 40 });
        using var scope = NewDisposeScope();
        var whole = SceneRenderer.Render(sample.Scene, 64, 48);
        long[] frames = [39, 0, 17, 17];

        var selected = SceneRenderer.Render(sample.Scene, frames, 64, 48);

        Assert.Equal(new long[] { 4, 48, 64, 3 }, selected.shape);
        Assert.True(selected.eq(whole.index_select(0, tensor(frames))).all().item<bool>());
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => SceneRenderer.RenderRgb(sample.Scene, [0, 40], 64, 48));
        Assert.Contains("0 to 39", ex.Message, StringComparison.Ordinal);
    }
}
