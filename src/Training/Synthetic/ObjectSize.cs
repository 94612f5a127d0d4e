namespace VidKV.AI.Training.Synthetic;

/// <summary>The size of a synthetic scene object (its bounding radius, see <see cref="SceneObject.Radius"/>).</summary>
public enum ObjectSize
{
    /// <summary>Bounding radius 0.07 of the frame's shorter side ("small").</summary>
    Small,

    /// <summary>Bounding radius 0.095 of the frame's shorter side ("medium").</summary>
    Medium,

    /// <summary>Bounding radius 0.12 of the frame's shorter side ("large").</summary>
    Large,
}
