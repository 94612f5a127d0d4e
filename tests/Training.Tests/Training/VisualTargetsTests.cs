using VidKV.AI.Training.Synthetic;
using VidKV.AI.Training;

namespace VidKV.AI.Training.Tests;

public sealed class VisualTargetsTests
{
    private static SceneSpec Scene(params SceneObject[] objects) => new(8, new RgbColor(10, 10, 10), 0, 1, objects);

    [Fact]
    public void EachObject_LabelsTheCellHoldingItsCentre_OnFramesItIsVisible()
    {
        var red = new SceneObject(ShapeKind.Star, SceneColor.Red, ObjectSize.Large, 0.1, 0.9, MotionDirection.Right, 0.1, 0, 8);
        var blue = new SceneObject(ShapeKind.Square, SceneColor.Blue, ObjectSize.Small, 0.6, 0.3, MotionDirection.None, 0, 4, 8);
        var targets = VisualTargets.Compute(Scene(red, blue), [0, 5], cellsPerSide: 4);

        int none = VisualTargets.ColorClasses - 1;
        Assert.Equal(2 * 16, targets.Color.Length);

        // Frame 0: red at (0.1, 0.9) -> cell (row 3, col 0); blue not yet visible.
        Assert.Equal((int)SceneColor.Red, targets.Color[12]);
        Assert.Equal((int)ShapeKind.Star, targets.Shape[12]);
        Assert.Equal((int)ObjectSize.Large, targets.Size[12]);
        Assert.Equal(0.4f, targets.Offset[24], 5);
        Assert.Equal(0.6f, targets.Offset[25], 5);
        Assert.Equal(15, targets.Color.Take(16).Count(c => c == none));

        // Frame 5: red moved to x = 0.6 -> cell (3, 2); blue at (0.6, 0.3) -> cell (1, 2).
        Assert.Equal((int)SceneColor.Red, targets.Color[16 + 14]);
        Assert.Equal((int)SceneColor.Blue, targets.Color[16 + 6]);
        Assert.Equal((int)ShapeKind.Square, targets.Shape[16 + 6]);
        Assert.Equal(14, targets.Color.Skip(16).Count(c => c == none));
        Assert.All(targets.Shape.Where((_, i) => targets.Color[i] == none), s => Assert.Equal(VisualTargets.Ignore, s));
    }

    [Fact]
    public void InFramePositions_AreTheCentresOnScreen_InTheSameCells()
    {
        var red = new SceneObject(ShapeKind.Star, SceneColor.Red, ObjectSize.Large, 0.1, 0.9, MotionDirection.Right, 0.1, 0, 8);
        var blue = new SceneObject(ShapeKind.Square, SceneColor.Blue, ObjectSize.Small, 0.6, 0.3, MotionDirection.None, 0, 4, 8);
        var inCell = VisualTargets.Compute(Scene(red, blue), [0, 5], cellsPerSide: 4);
        var inFrame = VisualTargets.Compute(Scene(red, blue), [0, 5], cellsPerSide: 4, PositionTarget.InFrame);

        Assert.Equal(inCell.Color, inFrame.Color);
        Assert.Equal(inCell.Shape, inFrame.Shape);
        Assert.Equal(0.1f, inFrame.Offset[24], 5);
        Assert.Equal(0.9f, inFrame.Offset[25], 5);
        var (x, y) = red.PositionAt(5);
        Assert.Equal((float)x, inFrame.Offset[2 * (16 + 14)], 5);
        Assert.Equal((float)y, inFrame.Offset[(2 * (16 + 14)) + 1], 5);
        Assert.Equal(0.6f, inFrame.Offset[2 * (16 + 6)], 5);
        Assert.Equal(0.3f, inFrame.Offset[(2 * (16 + 6)) + 1], 5);
    }

    [Fact]
    public void MotionTargets_NameTheObjectsMotion_OnceItWasSeenInAnEarlierFrameGiven()
    {
        var red = new SceneObject(ShapeKind.Star, SceneColor.Red, ObjectSize.Large, 0.1, 0.9, MotionDirection.Right, 0.1, 0, 8);
        var blue = new SceneObject(ShapeKind.Square, SceneColor.Blue, ObjectSize.Small, 0.6, 0.3, MotionDirection.None, 0, 4, 8);
        var targets = VisualTargets.Compute(Scene(red, blue), [0, 5, 6], cellsPerSide: 4);

        Assert.Equal(targets.Color.Length, targets.Motion.Length);

        // Frame 0: red is new, so its motion cannot be read yet.
        Assert.Equal(VisualTargets.Ignore, targets.Motion[12]);

        // Frame 5: red (cell (3, 2)) moves right; blue (cell (1, 2)) appears for the first time.
        Assert.Equal((long)MotionDirection.Right, targets.Motion[16 + 14]);
        Assert.Equal(VisualTargets.Ignore, targets.Motion[16 + 6]);

        // Frame 6: blue was seen in frame 5 and stays where it is.
        Assert.Equal((long)MotionDirection.None, targets.Motion[32 + 6]);
        Assert.Equal((long)MotionDirection.Right, targets.Motion[32 + 14]);
        Assert.Equal(3, targets.Motion.Count(m => m != VisualTargets.Ignore));

        // Cells without an object have no motion target.
        int none = VisualTargets.ColorClasses - 1;
        Assert.All(targets.Motion.Where((_, i) => targets.Color[i] == none), m => Assert.Equal(VisualTargets.Ignore, m));
    }

    [Fact]
    public void TwoCentresInOneCell_TheOneNearerItsMiddleWins()
    {
        var near = new SceneObject(ShapeKind.Circle, SceneColor.Green, ObjectSize.Small, 0.13, 0.13, MotionDirection.None, 0, 0, 8);
        var far = new SceneObject(ShapeKind.Cross, SceneColor.Yellow, ObjectSize.Small, 0.02, 0.02, MotionDirection.None, 0, 0, 8);

        foreach (var scene in new[] { Scene(near, far), Scene(far, near) })
        {
            var targets = VisualTargets.Compute(scene, [3], cellsPerSide: 4);
            Assert.Equal((int)SceneColor.Green, targets.Color[0]);
            Assert.Equal((int)ShapeKind.Circle, targets.Shape[0]);
        }
    }

    [Fact]
    public void GeneratedSamples_LabelEveryVisibleObjectOnEveryFrameGiven()
    {
        for (int seed = 0; seed < 40; seed++)
        {
            var sample = SceneGenerator.Generate(seed, new SceneOptions { MaxFrames = 96, NeedleMinFrames = 64 });
            var frames = VidKvTinyRecipe.FrameIndices(sample);
            var targets = VisualTargets.Compute(sample.Scene, frames, 4);
            for (int i = 0; i < frames.Length; i++)
            {
                var labelled = targets.Color.Skip(i * 16).Take(16).Where(c => c != VisualTargets.ColorClasses - 1).ToHashSet();
                var visible = sample.Scene.Objects.Where(o => o.IsVisible((int)frames[i])).Select(o => (long)o.Color).ToHashSet();
                Assert.Subset(visible, labelled);

                // Objects never overlap, so centres rarely share a cell; every visible object that owns a cell is labelled.
                Assert.True(visible.Count - labelled.Count <= 1, $"seed {seed}, frame {frames[i]}: {visible.Count} visible, {labelled.Count} labelled");
            }
        }
    }
}
