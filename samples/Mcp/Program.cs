// An MCP server with the video tools (ask_about_video, describe_video) over the built-in VideoLLM or a checkpoint:
//   dotnet run -c Release --project samples/Mcp                          # stdio, as MCP clients launch it
//   dotnet run -c Release --project samples/Mcp -- --http                # streamable HTTP on http://127.0.0.1:5090/mcp
// Settings (command line --Section:Key=value, environment Section__Key, or appsettings.json next to the program):
//   Mcp:MediaRoots:0=/path/to/videos   (none by default: the tools then take data URLs only)
//   Mcp:ApiKey, Mcp:AllowedHosts (HTTP only), VidKV:* (the model, as for the OpenAI server).
using VidKV.AI.Mcp;

if (args.Contains("--http"))
{
    var app = VidKVMcpServer.CreateHttp([.. args.Where(a => a != "--http")]);
    if (string.IsNullOrEmpty(app.Configuration["Urls"]) && string.IsNullOrEmpty(app.Configuration["urls"]))
    {
        app.Urls.Add("http://127.0.0.1:5090");
    }

    await app.RunAsync();
}
else
{
    await VidKVMcpServer.CreateStdio([.. args.Where(a => a != "--stdio")]).RunAsync();
}
