namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// A synthetic video, fully described: its length, its background and its objects. <see cref="SceneRenderer"/> turns
/// it into frames at any resolution; the same spec always renders to the same bytes.
/// </summary>
/// <remarks>
/// Immutable and thread-safe. Two specs are equal when their length, background, noise and objects (in order) are
/// equal.
/// </remarks>
public sealed class SceneSpec : IEquatable<SceneSpec>
{
    /// <summary>The largest allowed <see cref="NoiseLevel"/>.</summary>
    public const int MaxNoiseLevel = 32;

    private readonly SceneObject[] _objects;
    private readonly IReadOnlyList<SceneObject> _view;

    /// <summary>Creates a scene, checking every value.</summary>
    /// <param name="frameCount">The number of frames, at least 1.</param>
    /// <param name="background">The background's base colour; each channel at most <see cref="ScenePalette.MaxBackgroundChannel"/>.</param>
    /// <param name="noiseLevel">The background noise's amplitude: each pixel's grey level moves by up to this many steps, 0 to <see cref="MaxNoiseLevel"/>.</param>
    /// <param name="noiseSeed">The seed of the background noise.</param>
    /// <param name="objects">The objects, drawn in this order.</param>
    /// <exception cref="ArgumentNullException"><paramref name="objects"/> or one of its items is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside its range; the message names it and the range.</exception>
    /// <exception cref="ArgumentException">An object is invalid; the message names the object, the value and what is allowed.</exception>
    public SceneSpec(int frameCount, RgbColor background, int noiseLevel, int noiseSeed, IEnumerable<SceneObject> objects)
    {
        ArgumentNullException.ThrowIfNull(objects);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(frameCount);
        if (noiseLevel < 0 || noiseLevel > MaxNoiseLevel)
        {
            throw new ArgumentOutOfRangeException(nameof(noiseLevel), noiseLevel, $"The noise level must be 0 to {MaxNoiseLevel}.");
        }

        if (Math.Max(background.R, Math.Max(background.G, background.B)) > ScenePalette.MaxBackgroundChannel)
        {
            throw new ArgumentOutOfRangeException(
                nameof(background), background, $"Every background channel must be at most {ScenePalette.MaxBackgroundChannel} (the background is dark).");
        }

        _objects = [.. objects];
        for (int i = 0; i < _objects.Length; i++)
        {
            CheckObject(_objects[i], i, frameCount);
        }

        _view = Array.AsReadOnly(_objects);
        FrameCount = frameCount;
        Background = background;
        NoiseLevel = noiseLevel;
        NoiseSeed = noiseSeed;
    }

    /// <summary>The number of frames.</summary>
    public int FrameCount { get; }

    /// <summary>The background's base colour, before noise.</summary>
    public RgbColor Background { get; }

    /// <summary>The background noise's amplitude in grey levels (0: a flat background).</summary>
    public int NoiseLevel { get; }

    /// <summary>The seed of the background noise.</summary>
    public int NoiseSeed { get; }

    /// <summary>The objects, in drawing order.</summary>
    public IReadOnlyList<SceneObject> Objects => _view;

    /// <summary>The same video (length, background, noise) with every object removed: what a question alone gives.</summary>
    /// <returns>A scene without objects.</returns>
    public SceneSpec WithoutObjects() => new(FrameCount, Background, NoiseLevel, NoiseSeed, []);

    /// <summary>The objects visible on a frame.</summary>
    /// <param name="frameIndex">A frame index.</param>
    /// <returns>The visible objects, in drawing order.</returns>
    public IEnumerable<SceneObject> VisibleAt(int frameIndex) => _objects.Where(o => o.IsVisible(frameIndex));

    /// <inheritdoc/>
    public bool Equals(SceneSpec? other) =>
        other is not null
        && FrameCount == other.FrameCount
        && Background == other.Background
        && NoiseLevel == other.NoiseLevel
        && NoiseSeed == other.NoiseSeed
        && _objects.AsSpan().SequenceEqual(other._objects);

    /// <inheritdoc/>
    public override bool Equals(object? obj) => Equals(obj as SceneSpec);

    /// <inheritdoc/>
    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(FrameCount);
        hash.Add(Background);
        hash.Add(NoiseLevel);
        hash.Add(NoiseSeed);
        foreach (var o in _objects)
        {
            hash.Add(o);
        }

        return hash.ToHashCode();
    }

    /// <summary>A one-line summary: length and every object with its visible frames.</summary>
    /// <returns>For example <c>"32 frames: red circle [0, 32) static; blue star [4, 20) left"</c>.</returns>
    public override string ToString() =>
        $"{FrameCount} frames: " + string.Join("; ", _objects.Select(o => $"{o.Description} [{o.AppearFrame}, {o.DisappearFrame}) {(o.Motion == MotionDirection.None ? "static" : SceneVocabulary.Name(o.Motion))}"));

    private static void CheckObject(SceneObject? o, int index, int frameCount)
    {
        if (o is null)
        {
            throw new ArgumentNullException(nameof(Objects), $"Scene object {index} is null.");
        }

        string where = $"Scene object {index} ({o.Color} {o.Shape})";
        if (!Enum.IsDefined(o.Shape) || !Enum.IsDefined(o.Color) || !Enum.IsDefined(o.Size) || !Enum.IsDefined(o.Motion))
        {
            throw new ArgumentException($"{where}: shape, colour, size and motion must be defined enum values.", nameof(Objects));
        }

        if (!double.IsFinite(o.X) || !double.IsFinite(o.Y))
        {
            throw new ArgumentException($"{where}: the position ({o.X}, {o.Y}) must be finite.", nameof(Objects));
        }

        if (!double.IsFinite(o.Speed) || o.Speed < 0 || (o.Motion == MotionDirection.None && o.Speed != 0))
        {
            throw new ArgumentException($"{where}: speed {o.Speed} is not allowed; it must be finite and >= 0, and 0 for a static object.", nameof(Objects));
        }

        if (o.AppearFrame < 0 || o.DisappearFrame <= o.AppearFrame || o.DisappearFrame > frameCount)
        {
            throw new ArgumentException(
                $"{where}: visible frames [{o.AppearFrame}, {o.DisappearFrame}) are not allowed; 0 <= appear < disappear <= {frameCount} (the frame count).",
                nameof(Objects));
        }
    }
}
