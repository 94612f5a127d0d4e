namespace VidKV.AI.Connector;

/// <summary>Why a request could not get the model.</summary>
public enum ModelBusyReason
{
    /// <summary>The queue of waiting requests was full (<see cref="VidKVChatClientOptions.MaxQueueLength"/>).</summary>
    QueueFull,

    /// <summary>The request waited longer than <see cref="VidKVChatClientOptions.QueueTimeout"/>.</summary>
    QueueTimeout,
}

/// <summary>
/// A request was refused because the model is busy: the queue was full, or the wait for the model ran past its limit.
/// Nothing was generated and no native memory was taken; the request may be retried later (HTTP 429 or 503).
/// </summary>
public sealed class ModelBusyException : InvalidOperationException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="reason">Why the request was refused.</param>
    /// <param name="message">What happened and what to do.</param>
    public ModelBusyException(ModelBusyReason reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    /// <summary>Why the request was refused.</summary>
    public ModelBusyReason Reason { get; }
}
