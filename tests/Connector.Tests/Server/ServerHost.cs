using System.Collections.Concurrent;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using VidKV.AI.Server;

namespace VidKV.AI.Connector.Tests.Server;

/// <summary>The server on real Kestrel on a free loopback port, with its log lines kept for assertions.</summary>
internal sealed class ServerHost : IAsyncDisposable
{
    private ServerHost(WebApplication app, Uri address, LogSink logs)
    {
        App = app;
        Address = address;
        Logs = logs;
        Http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(2) };
    }

    public WebApplication App { get; }

    public Uri Address { get; }

    public HttpClient Http { get; }

    public LogSink Logs { get; }

    public VidKVChatClient Model => App.Services.GetRequiredService<VidKVChatClient>();

    /// <summary>Starts a server over the random tiny checkpoint (or the built-in model with <paramref name="builtIn"/>).</summary>
    public static async Task<ServerHost> StartAsync(IDictionary<string, string?>? settings = null, bool builtIn = false)
    {
        var config = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["VidKV:ModelPath"] = builtIn ? string.Empty : TinyModel.Folder,
            ["VidKV:FrameCount"] = "4",
            ["VidKV:MaxOutputTokens"] = "6",
            ["VidKV:MaxQueueLength"] = "1",
            ["VidKV:QueueTimeout"] = "00:00:03",
            ["VidKV:Resilience:MaxRetryAttempts"] = "0",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            config[key] = value;
        }

        var logs = new LogSink();
        var app = ServerApp.Create([], builder =>
        {
            builder.Configuration.AddInMemoryCollection(config);
            builder.Logging.AddProvider(logs);
        });
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new ServerHost(app, new Uri(address), logs);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }

    /// <summary>Keeps every log line the server writes (level, category, message, exception).</summary>
    internal sealed class LogSink : ILoggerProvider
    {
        public ConcurrentQueue<(LogLevel Level, string Category, string Message, Exception? Exception)> Entries { get; } = new();

        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);

        public void Dispose()
        {
        }

        private sealed class Logger(LogSink sink, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state)
                where TState : notnull => null;

            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (IsEnabled(logLevel))
                {
                    sink.Entries.Enqueue((logLevel, category, formatter(state, exception), exception));
                }
            }
        }
    }
}
