namespace VidKV.AI.Backend.Media;

/// <summary>
/// Media that exceeds one of the <see cref="MediaLimits"/>: too many bytes, a declared size or frame count over the caps,
/// more pixels than the request's budget, or decoding that took longer than allowed. The message names the media, the
/// limit and its value. It is the caller's input that is refused (an HTTP server answers 400), not a fault of the media
/// or of the server: hence an <see cref="ArgumentException"/> (whose <see cref="ArgumentException.ParamName"/> is not set).
/// </summary>
public sealed class MediaLimitExceededException : ArgumentException
{
    /// <summary>Creates the exception.</summary>
    /// <param name="message">Names the media, the limit and its value.</param>
    /// <param name="limit">The <see cref="MediaLimits"/> property exceeded, e.g. "MaxWidth".</param>
    public MediaLimitExceededException(string message, string limit)
        : base(message)
    {
        ArgumentNullException.ThrowIfNull(limit);
        Limit = limit;
    }

    /// <summary>The <see cref="MediaLimits"/> property that was exceeded ("MaxBytes", "MaxWidth", "MaxHeight", "MaxFrames", "MaxDecodedPixels", "DecodeTimeout").</summary>
    public string Limit { get; }
}
