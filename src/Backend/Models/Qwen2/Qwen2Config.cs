namespace VidKV.AI.Backend.Models.Qwen2;

/// <summary>The Qwen2 decoder's settings.</summary>
public sealed record Qwen2Config
{
    /// <summary>Vocabulary size.</summary>
    public int VocabSize { get; init; }

    /// <summary>Hidden size.</summary>
    public int HiddenSize { get; init; }

    /// <summary>MLP inner size.</summary>
    public int IntermediateSize { get; init; }

    /// <summary>Decoder layers.</summary>
    public int NumLayers { get; init; }

    /// <summary>Query heads.</summary>
    public int NumHeads { get; init; }

    /// <summary>Key-value heads (grouped-query attention).</summary>
    public int NumKeyValueHeads { get; init; }

    /// <summary>Per-head dimension.</summary>
    public int HeadDim { get; init; }

    /// <summary>RMSNorm epsilon.</summary>
    public double RmsNormEps { get; init; }

    /// <summary>RoPE base.</summary>
    public double RopeTheta { get; init; }

    /// <summary>Longest supported sequence.</summary>
    public int MaxPositionEmbeddings { get; init; }

    /// <summary>Whether the output projection shares the input embedding.</summary>
    public bool TieWordEmbeddings { get; init; }

    /// <summary>End-of-sequence token ids.</summary>
    public IReadOnlyList<int> EosTokenIds { get; init; } = Array.Empty<int>();
}
