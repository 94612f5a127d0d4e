using System.Text.RegularExpressions;

namespace VidKV.AI.Server;

/// <summary>
/// Makes an exception's message fit for a client: the connector's .NET names become the request's field names, and
/// the server's paths and native pointers (ffmpeg writes heap addresses) are removed.
/// </summary>
public static partial class ErrorText
{
    /// <summary>The message for a client.</summary>
    /// <param name="message">The exception's message.</param>
    /// <param name="maxTokensName">The name the client gave the length limit.</param>
    public static string ForClient(string message, string maxTokensName)
    {
        ArgumentNullException.ThrowIfNull(message);
        string text = message
            .Replace("ChatOptions.MaxOutputTokens", maxTokensName, StringComparison.Ordinal)
            .Replace("MaxNewTokens", maxTokensName, StringComparison.Ordinal)
            .Replace("ChatOptions.Temperature", "temperature", StringComparison.Ordinal)
            .Replace("ChatOptions.TopP", "top_p", StringComparison.Ordinal)
            .Replace("ChatOptions.TopK", "top_k", StringComparison.Ordinal)
            .Replace("ChatOptions.StopSequences", "stop", StringComparison.Ordinal)
            .Replace("ChatOptions.ModelId", "model", StringComparison.Ordinal)
            .Replace("(VidKVChatClientOptions.MaxMediaBytes)", "(the server's VidKV:MaxMediaBytes)", StringComparison.Ordinal)
            .Replace("(VidKVChatClientOptions.MaxFrames)", "(the server's VidKV:MaxFrames)", StringComparison.Ordinal)
            .Replace("Invalid ChatOptions: ", string.Empty, StringComparison.Ordinal);
        text = AdditionalProperty().Replace(text, m => m.Groups[1].Value);
        text = LeadingBytes().Replace(text, "its content matches");
        text = text.Replace(Path.GetTempPath(), "<temp>/", StringComparison.Ordinal);
        text = Pointer().Replace(text, "0x?");
        text = UnixPath().Replace(text, "<path>");
        return WindowsPath().Replace(text, "<path>");
    }

    [GeneratedRegex("""ChatOptions\.AdditionalProperties\[\\?"vidkv\.([a-z_]+)\\?"\]""")]
    private static partial Regex AdditionalProperty();

    // The backend quotes a file's first bytes (and what they look like) to help a local user; a client gets neither.
    [GeneratedRegex(@"its content starts with bytes [0-9A-Fa-f]*(?: \([^)]*\))?, which match")]
    private static partial Regex LeadingBytes();

    [GeneratedRegex("0x[0-9a-fA-F]{6,}")]
    private static partial Regex Pointer();

    [GeneratedRegex(@"(?<![\w.:/<>-])/(?:[\w.+@~-]+/)+[\w.+@~-]*")]
    private static partial Regex UnixPath();

    [GeneratedRegex(@"\b[A-Za-z]:\\(?:[^\s'""\\]+\\)*[^\s'""\\]*")]
    private static partial Regex WindowsPath();
}
