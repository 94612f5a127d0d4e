namespace VidKV.AI.Backend.Batching;

/// <summary>What one sequence got from an admission or a step: an update (the last one carries the finish reason and
/// usage), or the error that ended it (an <see cref="OperationCanceledException"/> when it was cancelled).</summary>
/// <param name="Sequence">The sequence.</param>
/// <param name="Update">Its update, or <see langword="null"/> when it ended with <paramref name="Error"/>.</param>
/// <param name="Error">Why it ended without an update.</param>
internal sealed record SequenceUpdate(BatchedSequence Sequence, GenerationUpdate? Update, Exception? Error = null)
{
    /// <summary>Whether the sequence ended with this update (finished, cancelled or failed).</summary>
    public bool IsLast => Error is not null || Update?.FinishReason is not null;
}
