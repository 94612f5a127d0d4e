using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models;

/// <summary>What a model's key-value cache holds per token: decoder layers, key-value heads and head size, and where.</summary>
/// <param name="Layers">Decoder layers (one cache each).</param>
/// <param name="KeyValueHeads">Key-value heads per layer.</param>
/// <param name="HeadDim">Per-head dimension of keys and values.</param>
/// <param name="DType">The type keys and values arrive in.</param>
/// <param name="Device">The device the caches live on.</param>
internal sealed record CacheGeometry(int Layers, int KeyValueHeads, int HeadDim, ScalarType DType, Device Device);
