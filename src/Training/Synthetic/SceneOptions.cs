namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// Settings of <see cref="SceneGenerator"/>: the frame size, the range of video lengths, the question families and
/// the needle's timing. Defaults: 96x96 pixels, 8 to 256 frames, every family equally likely, up to 6 objects,
/// needle videos of 64 frames or more with the needle visible for 2 to 6 frames.
/// </summary>
/// <remarks>
/// Immutable; derive variants with <c>with</c> (<c>options with { Family = QuestionFamily.Needle }</c>).
/// <see cref="Validate"/> runs before every generation.
/// </remarks>
public sealed record SceneOptions
{
    /// <summary>The smallest allowed frame width or height.</summary>
    public const int MinSide = 16;

    /// <summary>The largest allowed frame width or height.</summary>
    public const int MaxSide = 1024;

    /// <summary>The smallest allowed video length.</summary>
    public const int MinFrameCount = 8;

    /// <summary>The largest allowed video length.</summary>
    public const int MaxFrameCount = 1024;

    /// <summary>The default rendering width in pixels (16 to 1024).</summary>
    public int Width { get; init; } = 96;

    /// <summary>The default rendering height in pixels (16 to 1024).</summary>
    public int Height { get; init; } = 96;

    /// <summary>The shortest video, in frames (8 to <see cref="MaxFrames"/>).</summary>
    public int MinFrames { get; init; } = 8;

    /// <summary>The longest video, in frames (<see cref="MinFrames"/> to 1024).</summary>
    public int MaxFrames { get; init; } = 256;

    /// <summary>The family to ask; <see langword="null"/> draws one from <see cref="FamilyMix"/> with the seed.</summary>
    public QuestionFamily? Family { get; init; }

    /// <summary>The weights the family is drawn with when <see cref="Family"/> is null.</summary>
    public FamilyMix FamilyMix { get; init; } = FamilyMix.Balanced;

    /// <summary>The most objects in a scene (2 to 8, the palette's size: every object has its own colour).</summary>
    public int MaxObjects { get; init; } = 6;

    /// <summary>The background noise's amplitude in grey levels (0 to <see cref="SceneSpec.MaxNoiseLevel"/>).</summary>
    public int NoiseLevel { get; init; } = 6;

    /// <summary>
    /// The shortest needle video: needle videos are <c>max(MinFrames, NeedleMinFrames)</c> to <see cref="MaxFrames"/>
    /// frames long. At least 8 x <see cref="NeedleMaxVisibleFrames"/>, so the needle is visible for at most an eighth of it.
    /// </summary>
    public int NeedleMinFrames { get; init; } = 64;

    /// <summary>The fewest frames the needle is visible on (1 to <see cref="NeedleMaxVisibleFrames"/>).</summary>
    public int NeedleMinVisibleFrames { get; init; } = 2;

    /// <summary>The most frames the needle is visible on (<see cref="NeedleMinVisibleFrames"/> or more).</summary>
    public int NeedleMaxVisibleFrames { get; init; } = 6;

    /// <summary>Checks every setting.</summary>
    /// <exception cref="ArgumentException">A setting is out of range or inconsistent; the message names it, its value and what is allowed.</exception>
    public void Validate()
    {
        Require(Width is >= MinSide and <= MaxSide, nameof(Width), Width, $"{MinSide} to {MaxSide}");
        Require(Height is >= MinSide and <= MaxSide, nameof(Height), Height, $"{MinSide} to {MaxSide}");
        Require(MinFrames is >= MinFrameCount and <= MaxFrameCount, nameof(MinFrames), MinFrames, $"{MinFrameCount} to {MaxFrameCount}");
        Require(MaxFrames >= MinFrames && MaxFrames <= MaxFrameCount, nameof(MaxFrames), MaxFrames, $"MinFrames ({MinFrames}) to {MaxFrameCount}");
        Require(MaxObjects is >= 2 && MaxObjects <= ScenePalette.Colors.Count, nameof(MaxObjects), MaxObjects, $"2 to {ScenePalette.Colors.Count} (one palette colour per object)");
        Require(NoiseLevel is >= 0 and <= SceneSpec.MaxNoiseLevel, nameof(NoiseLevel), NoiseLevel, $"0 to {SceneSpec.MaxNoiseLevel}");
        Require(Family is null || Enum.IsDefined(Family.Value), nameof(Family), Family, $"null or one of {string.Join(", ", Enum.GetNames<QuestionFamily>())}");
        if (FamilyMix is null)
        {
            throw new ArgumentException("FamilyMix is null; allowed: a FamilyMix, e.g. FamilyMix.Balanced.", nameof(FamilyMix));
        }

        Require(NeedleMinVisibleFrames >= 1, nameof(NeedleMinVisibleFrames), NeedleMinVisibleFrames, "1 or more");
        Require(NeedleMaxVisibleFrames >= NeedleMinVisibleFrames, nameof(NeedleMaxVisibleFrames), NeedleMaxVisibleFrames, $"NeedleMinVisibleFrames ({NeedleMinVisibleFrames}) or more");
        Require(
            NeedleMinFrames >= 8 * NeedleMaxVisibleFrames,
            nameof(NeedleMinFrames),
            NeedleMinFrames,
            $"at least 8 x NeedleMaxVisibleFrames = {8 * NeedleMaxVisibleFrames}, so that the needle is brief");
        bool needleAsked = Family == QuestionFamily.Needle || (Family is null && FamilyMix.Fraction(QuestionFamily.Needle) > 0);
        if (needleAsked && MaxFrames < NeedleMinFrames)
        {
            throw new ArgumentException(
                $"MaxFrames is {MaxFrames}, but needle questions need videos of NeedleMinFrames ({NeedleMinFrames}) frames or more; "
                + "raise MaxFrames, lower NeedleMinFrames, or leave the Needle family out of the mix.",
                nameof(MaxFrames));
        }
    }

    private static void Require(bool ok, string name, object? value, string allowed)
    {
        if (!ok)
        {
            throw new ArgumentException($"{name} is {value?.ToString() ?? "null"}; allowed: {allowed}.", name);
        }
    }
}
