namespace VidKV.AI.Connector;

/// <summary>
/// The default Polly pipeline that <c>AddVidKVChatClient</c> registers (<c>AddResiliencePipeline</c>) around the client:
/// a time limit on getting the first token, and retries of requests refused because the queue was full. Nothing is
/// retried once a token has been streamed.
/// </summary>
public sealed class VidKVResilienceOptions
{
    /// <summary>Whether the pipeline is used. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// How long one attempt may take to produce its first token (queue wait, video decoding and prefill included);
    /// then it fails with Polly's <c>TimeoutRejectedException</c>. <see langword="null"/> for no limit. Default 10 minutes.
    /// </summary>
    public TimeSpan? FirstTokenTimeout { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Retries of a request refused with <see cref="ModelBusyReason.QueueFull"/> (0 to 10). Default 2.</summary>
    public int MaxRetryAttempts { get; set; } = 2;

    /// <summary>The first retry's delay; later ones back off exponentially, with jitter. Default 1 second.</summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Checks every value; the message names the wrong one and what is allowed.</summary>
    /// <exception cref="ArgumentException">A value is not allowed.</exception>
    public void Validate()
    {
        if (FirstTokenTimeout is { } t && (t <= TimeSpan.Zero || t > TimeSpan.FromDays(1)))
        {
            throw new ArgumentException($"VidKV:Resilience:FirstTokenTimeout is {t}; allowed: more than zero, at most one day, or empty for no limit.");
        }

        if (MaxRetryAttempts is < 0 or > 10)
        {
            throw new ArgumentException($"VidKV:Resilience:MaxRetryAttempts is {MaxRetryAttempts}; allowed: 0 to 10.");
        }

        if (RetryDelay < TimeSpan.Zero || RetryDelay > TimeSpan.FromMinutes(10))
        {
            throw new ArgumentException($"VidKV:Resilience:RetryDelay is {RetryDelay}; allowed: zero to ten minutes.");
        }
    }
}
