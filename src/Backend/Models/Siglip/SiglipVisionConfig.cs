namespace VidKV.AI.Backend.Models.Siglip;

/// <summary>The SigLIP vision tower's settings.</summary>
public sealed record SiglipVisionConfig
{
    /// <summary>Hidden size.</summary>
    public int HiddenSize { get; init; }

    /// <summary>MLP inner size.</summary>
    public int IntermediateSize { get; init; }

    /// <summary>Encoder layers.</summary>
    public int NumLayers { get; init; }

    /// <summary>Attention heads.</summary>
    public int NumHeads { get; init; }

    /// <summary>Input image side in pixels.</summary>
    public int ImageSize { get; init; }

    /// <summary>Patch side in pixels.</summary>
    public int PatchSize { get; init; }

    /// <summary>Input channels.</summary>
    public int NumChannels { get; init; } = 3;

    /// <summary>LayerNorm epsilon.</summary>
    public double LayerNormEps { get; init; }

    /// <summary>Patches per side.</summary>
    public int PatchesPerSide => ImageSize / PatchSize;
}
