namespace VidKV.AI.Server;

/// <summary>The <c>Server</c> section: who may call, and which files a request may name.</summary>
public sealed class ServerOptions
{
    /// <summary>The section name.</summary>
    public const string SectionName = "Server";

    /// <summary>
    /// Host names the server answers (the request's <c>Host</c> header, without the port): a name, <c>*.example.com</c>
    /// for its subdomains, or <c>*</c> for any. The default, loopback names only, keeps a web page from reaching the
    /// server through a name it controls (DNS rebinding). Empty (the default) means <see cref="LoopbackHosts"/>.
    /// </summary>
    public string[] AllowedHosts { get; set; } = [];

    /// <summary>The host names allowed when <see cref="AllowedHosts"/> is empty.</summary>
    public static IReadOnlyList<string> LoopbackHosts { get; } = ["localhost", "127.0.0.1", "[::1]"];

    /// <summary>The host names in force: <see cref="AllowedHosts"/>, else <see cref="LoopbackHosts"/>.</summary>
    public IReadOnlyList<string> EffectiveAllowedHosts => AllowedHosts is { Length: > 0 } hosts ? hosts : LoopbackHosts;

    /// <summary>When set, every <c>/v1</c> request needs <c>Authorization: Bearer &lt;key&gt;</c>, as OpenAI clients send it.</summary>
    public string? ApiKey { get; set; }

    /// <summary>Folders whose files requests may name by path; empty (the default): no request can make the server read a file.</summary>
    public string[] MediaRoots { get; set; } = [];

    /// <summary>How long reading one file may take.</summary>
    public TimeSpan MediaReadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>The largest request body, in bytes (base64 makes media a third larger); larger bodies get 413.</summary>
    public long MaxRequestBodyBytes { get; set; } = 64L * 1024 * 1024;

    /// <summary>Checks the values.</summary>
    /// <exception cref="ArgumentException">A value is out of range; the message names it.</exception>
    public void Validate()
    {
        if (MaxRequestBodyBytes < 1024)
        {
            throw new ArgumentException($"Server:MaxRequestBodyBytes is {MaxRequestBodyBytes}; allowed: at least 1024.");
        }

        if (AllowedHosts is null || AllowedHosts.Any(string.IsNullOrWhiteSpace))
        {
            throw new ArgumentException("Server:AllowedHosts has an empty entry; give host names (localhost, 127.0.0.1, *.example.com) or '*'.");
        }

        if (ApiKey is { Length: > 0 and < 8 })
        {
            throw new ArgumentException("Server:ApiKey is shorter than 8 characters; give a longer key or leave it out.");
        }
    }
}
