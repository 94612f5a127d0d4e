namespace VidKV.AI.Mcp;

/// <summary>The <c>Mcp</c> section: which files the tools may read and, over HTTP, who may call.</summary>
public sealed class McpOptions
{
    /// <summary>The section name.</summary>
    public const string SectionName = "Mcp";

    /// <summary>Folders whose videos the tools may read by path (absolute, <c>file:</c>, or relative to a root); empty (the default): data URLs only.</summary>
    public string[] MediaRoots { get; set; } = [];

    /// <summary>How long reading one file may take.</summary>
    public TimeSpan MediaReadTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>HTTP only: host names answered; empty means loopback names only (see the OpenAI server's <c>Server:AllowedHosts</c>).</summary>
    public string[] AllowedHosts { get; set; } = [];

    /// <summary>HTTP only: when set, every request needs <c>Authorization: Bearer &lt;key&gt;</c>.</summary>
    public string? ApiKey { get; set; }
}
