namespace VidKV.AI.Backend.Memory;

/// <summary>Progress of remembering a video: the stage just started, and the share of the whole work done before it.</summary>
/// <param name="Stage">The stage just started.</param>
/// <param name="Fraction">Share of the work done, 0 to 1 (estimated from the stages' usual costs; 1 at <see cref="VideoMemoryStage.Done"/>).</param>
public readonly record struct VideoMemoryProgress(VideoMemoryStage Stage, double Fraction);
