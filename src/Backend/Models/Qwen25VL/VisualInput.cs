namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>One image or video of a prompt, for its multimodal positions.</summary>
/// <param name="IsVideo">Whether it is a video.</param>
/// <param name="Grid">Its patch grid.</param>
/// <param name="SecondsPerGrid">Seconds between temporal patches (videos: temporal patch size / sampled frame rate).</param>
public readonly record struct VisualInput(bool IsVideo, VisionGrid Grid, double SecondsPerGrid = 1.0);
