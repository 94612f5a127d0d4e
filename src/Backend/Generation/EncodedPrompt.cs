using static TorchSharp.torch;

namespace VidKV.AI.Backend.Generation;

/// <summary>A prompt ready for the decoder's prefill.</summary>
/// <param name="Layout">Its token ids and where its visual tokens are.</param>
/// <param name="Embeddings">Input embeddings [1, T, D] with the visual features merged in.</param>
internal sealed record EncodedPrompt(PromptLayout Layout, Tensor Embeddings)
{
    /// <summary>Position ids of the prompt; <see langword="null"/> for 0..T-1.</summary>
    public Tensor? PositionIds { get; init; }

    /// <summary>Semantic token protection scores [T]; <see langword="null"/> when the cache protects no tokens.</summary>
    public Tensor? Importance { get; init; }

    /// <summary>The position of the first generated token (T for 1-D positions).</summary>
    public long NextPosition { get; init; }
}
