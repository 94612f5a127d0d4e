using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Rotary tables for a run of positions: cos and sin [T, headDim] (float32), broadcast over batch and heads.</summary>
/// <param name="Cos">cos of each position's angles.</param>
/// <param name="Sin">sin of each position's angles.</param>
internal sealed record RotaryTables(Tensor Cos, Tensor Sin);
