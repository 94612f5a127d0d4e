using Microsoft.Extensions.Options;
using VidKV.AI.Connector;
using VidKV.AI.Server;

namespace VidKV.AI.Mcp;

/// <summary>
/// The MCP server over the connector's <see cref="VidKVChatClient"/>, on stdio (what MCP clients launch) or
/// streamable HTTP (<c>/mcp</c>).
/// </summary>
public static class VidKVMcpServer
{
    /// <summary>
    /// The tools every transport exposes. The extension point: a new tool type (e.g. remember/forget a video once the
    /// connector has video memory) is one more <c>.WithTools&lt;T&gt;()</c> here, its dependencies registered in
    /// <see cref="AddServices"/>.
    /// </summary>
    public static IMcpServerBuilder WithVidKVTools(this IMcpServerBuilder builder) => builder.WithTools<VideoTools>();

    /// <summary>The stdio server: JSON-RPC on standard input and output, logs on standard error.</summary>
    public static IHost CreateStdio(string[] args, Action<HostApplicationBuilder>? configure = null)
    {
        var builder = Host.CreateApplicationBuilder(new HostApplicationBuilderSettings { Args = args, ContentRootPath = AppContext.BaseDirectory });
        Settings(builder.Configuration, args);
        builder.Logging.ClearProviders();
        builder.Logging.AddConsole(console => console.LogToStandardErrorThreshold = LogLevel.Trace);
        configure?.Invoke(builder);
        AddServices(builder.Services, builder.Configuration);
        builder.Services.AddMcpServer().WithStdioServerTransport().WithVidKVTools();
        return builder.Build();
    }

    /// <summary>The HTTP server: streamable HTTP at <c>/mcp</c>, loopback names only unless <c>Mcp:AllowedHosts</c> says otherwise, an optional API key.</summary>
    public static WebApplication CreateHttp(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
        Settings(builder.Configuration, args);
        configure?.Invoke(builder);
        var options = AddServices(builder.Services, builder.Configuration);
        builder.Services.AddMcpServer().WithHttpTransport(http => http.Stateless = true).WithVidKVTools();
        var app = builder.Build();
        _ = app.Services.GetRequiredService<MediaRoots>();

        IReadOnlyList<string> hosts = options.AllowedHosts is { Length: > 0 } allowed ? allowed : ServerOptions.LoopbackHosts;
        string? expected = string.IsNullOrEmpty(options.ApiKey) ? null : "Bearer " + options.ApiKey;
        app.Use(async (context, next) =>
        {
            if (!ServerGuards.HostAllowed(context.Request.Host.Host, hosts))
            {
                context.Response.StatusCode = StatusCodes.Status400BadRequest;
                await context.Response.WriteAsJsonAsync(new { error = "The Host header names a host this server does not answer (Mcp:AllowedHosts)." }).ConfigureAwait(false);
                return;
            }

            if (expected is not null && !ServerGuards.SameKey(context.Request.Headers.Authorization.ToString(), expected))
            {
                context.Response.StatusCode = StatusCodes.Status401Unauthorized;
                context.Response.Headers.WWWAuthenticate = "Bearer";
                await context.Response.WriteAsJsonAsync(new { error = "A valid API key is required: Authorization: Bearer <Mcp:ApiKey>." }).ConfigureAwait(false);
                return;
            }

            await next(context).ConfigureAwait(false);
        });
        app.MapMcp("/mcp");
        return app;
    }

    /// <summary>
    /// Settings from <c>mcpsettings.json</c> next to the program, then environment variables (<c>Mcp__MediaRoots__0</c>), then the command line: the OpenAI server's <c>appsettings.json</c>, which its project
    /// reference copies next to this program, is not read (its port and settings are the other server's).
    /// </summary>
    private static void Settings(IConfigurationManager configuration, string[] args)
    {
        configuration.Sources.Clear();
        configuration.AddJsonFile(Path.Combine(AppContext.BaseDirectory, "mcpsettings.json"), optional: true, reloadOnChange: false);
        configuration.AddEnvironmentVariables();
        configuration.AddCommandLine(args);
    }

    /// <summary>The model and the media roots, from the <c>VidKV</c> and <c>Mcp</c> sections.</summary>
    private static McpOptions AddServices(IServiceCollection services, IConfiguration configuration)
    {
        var options = configuration.GetSection(McpOptions.SectionName).Get<McpOptions>() ?? new McpOptions();
        services.AddVidKVChatClient(configuration.GetSection("VidKV"));
        services.AddSingleton(provider =>
        {
            var model = provider.GetRequiredService<IOptions<VidKVChatClientOptions>>().Value;
            return new MediaRoots(options.MediaRoots, model.MaxMediaBytes, options.MediaReadTimeout, "Mcp:MediaRoots");
        });
        return options;
    }
}
