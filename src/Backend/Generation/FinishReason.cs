namespace VidKV.AI.Backend.Generation;

/// <summary>Why generation ended.</summary>
public enum FinishReason
{
    /// <summary>The model produced an end-of-turn or end-of-text token.</summary>
    EndOfTurn,

    /// <summary>A stop sequence appeared in the output.</summary>
    StopSequence,

    /// <summary><see cref="GenerationOptions.MaxNewTokens"/> was reached.</summary>
    Length,
}
