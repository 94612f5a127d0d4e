using Microsoft.Extensions.Logging;

namespace VidKV.AI.Backend.Memory;

/// <summary>The video memory's log messages.</summary>
internal static partial class VideoMemoryLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Warning, Message = "Video memory entry {Key} is unusable and was ignored (it will be computed again): {Reason}")]
    public static partial void UnusableEntry(ILogger logger, string key, string reason);

    [LoggerMessage(EventId = 2, Level = LogLevel.Warning, Message = "Video memory entry {Key} could not be removed: {Reason}")]
    public static partial void RemoveFailed(ILogger logger, string key, string reason);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Video memory entry {Key} could not be saved to the shared store: {Reason}")]
    public static partial void SaveFailed(ILogger logger, string key, string reason);

    [LoggerMessage(EventId = 4, Level = LogLevel.Debug, Message = "Video memory: reused {Tokens} cached prompt tokens ({Key})")]
    public static partial void Reused(ILogger logger, int tokens, string key);

    [LoggerMessage(EventId = 5, Level = LogLevel.Debug, Message = "Video memory: stored a prefix of {Tokens} tokens, {Bytes} bytes ({Key})")]
    public static partial void Stored(ILogger logger, int tokens, long bytes, string key);
}
