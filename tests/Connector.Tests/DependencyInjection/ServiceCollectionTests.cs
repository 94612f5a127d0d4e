using Microsoft.Extensions.AI;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace VidKV.AI.Connector.Tests.DependencyInjection;

/// <summary>DI patterns: singleton and keyed registrations resolve, options bind and are validated at start-up.</summary>
public sealed class ServiceCollectionTests
{
    private static IConfiguration Configuration(params (string Key, string Value)[] values) => new ConfigurationBuilder()
        .AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["VidKV:ModelPath"] = TinyModel.Folder,
            ["VidKV:FrameCount"] = "4",
            ["VidKV:MaxOutputTokens"] = "3",
            ["VidKV:CachePreset"] = "vidkv-2",
            ["VidKV:Resilience:MaxRetryAttempts"] = "1",
        })
        .AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value)))
        .Build();

    [Fact]
    public async Task AddVidKVChatClient_FromConfiguration_ResolvesOneSingletonThatAnswers()
    {
        var services = new ServiceCollection();
        services.AddVidKVChatClient(Configuration().GetSection("VidKV"));
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<IChatClient>();
        Assert.Same(client, provider.GetRequiredService<IChatClient>());
        var inner = client.GetService<VidKVChatClient>();
        Assert.NotNull(inner);
        Assert.Same(inner, provider.GetRequiredService<VidKVChatClient>());
        var options = inner.GetService<VidKVChatClientOptions>()!;
        Assert.Equal(4, options.FrameCount);
        Assert.Equal("vidkv-2", options.CachePreset);
        Assert.Equal(1, options.Resilience.MaxRetryAttempts);
        Assert.Equal("vidkv-tiny-random", client.GetService<ChatClientMetadata>()!.DefaultModelId);

        var response = await client.GetResponseAsync([TinyModel.VideoQuestion()]);
        Assert.True(response.Usage!.OutputTokenCount <= 3);
        Assert.Equal(4 * 16 + 1, response.Usage.AdditionalCounts![VidKVUsage.VideoTokensKey]);
    }

    [Fact]
    public async Task AddKeyedVidKVChatClient_ResolvesByKey_BesideTheDefault()
    {
        var services = new ServiceCollection();
        services.AddVidKVChatClient(o => { o.ModelPath = TinyModel.Folder; o.ModelId = "default-model"; });
        services.AddKeyedVidKVChatClient("fast", o => { o.ModelPath = TinyModel.Folder; o.ModelId = "fast-model"; o.CachePreset = "fp16"; });
        await using var provider = services.BuildServiceProvider();

        var keyed = provider.GetRequiredKeyedService<IChatClient>("fast");
        var unkeyed = provider.GetRequiredService<IChatClient>();

        Assert.NotSame(keyed, unkeyed);
        Assert.Equal("fast-model", keyed.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Equal("default-model", unkeyed.GetService<ChatClientMetadata>()!.DefaultModelId);
        Assert.Equal("fp16", provider.GetRequiredKeyedService<VidKVChatClient>("fast").GetService<VidKVChatClientOptions>()!.CachePreset);
    }

    [Fact]
    public async Task TheBuilder_ComposesWithLoggingOpenTelemetryAndFunctionInvocation()
    {
        var services = new ServiceCollection();
        services.AddLogging();
        services.AddVidKVChatClient(o => { o.ModelPath = TinyModel.Folder; o.FrameCount = 4; })
            .UseFunctionInvocation()
            .UseOpenTelemetry(sourceName: "VidKV.Tests")
            .UseLogging();
        await using var provider = services.BuildServiceProvider();

        var client = provider.GetRequiredService<IChatClient>();
        Assert.NotNull(client.GetService<FunctionInvokingChatClient>());
        Assert.NotNull(client.GetService<OpenTelemetryChatClient>());
        Assert.NotNull(client.GetService<LoggingChatClient>());
        Assert.NotNull(client.GetService<VidKVResilienceChatClient>());
        Assert.NotNull(client.GetService<VidKVChatClient>());

        var updates = new List<ChatResponseUpdate>();
        await foreach (var update in client.GetStreamingResponseAsync([TinyModel.VideoQuestion()], new ChatOptions { MaxOutputTokens = 2 }))
        {
            updates.Add(update);
        }

        Assert.NotNull(updates[^1].FinishReason);
        Assert.Single(updates.SelectMany(u => u.Contents).OfType<UsageContent>());
    }

    [Theory]
    [InlineData("VidKV:CachePreset", "vidkv-3", "VidKV:CachePreset is 'vidkv-3'")]
    [InlineData("VidKV:FrameCount", "0", "VidKV:FrameCount is 0")]
    [InlineData("VidKV:Device", "tpu", "VidKV:Device is 'tpu'")]
    [InlineData("VidKV:ModelPath", "/no/such/folder", "VidKV:ModelPath '/no/such/folder' is not a folder")]
    [InlineData("VidKV:Resilience:MaxRetryAttempts", "50", "MaxRetryAttempts is 50")]
    public async Task InvalidOptions_StopTheHostAtStartUp_NamingTheValue(string key, string value, string expected)
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddVidKVChatClient(Configuration((key, value)).GetSection("VidKV"));
        using var host = builder.Build();

        var e = await Assert.ThrowsAsync<OptionsValidationException>(() => host.StartAsync());

        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public async Task ValidOptions_StartTheHost_AndTheHostDisposesTheClient()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Services.AddVidKVChatClient(Configuration().GetSection("VidKV"));
        VidKVChatClient client;
        using (var host = builder.Build())
        {
            await host.StartAsync();
            client = host.Services.GetRequiredService<VidKVChatClient>();
            Assert.NotNull(client.GetService<Backend.IVideoLanguageModel>());
            await host.StopAsync();
        }

        Assert.Null(client.GetService<Backend.IVideoLanguageModel>());
        await Assert.ThrowsAsync<ObjectDisposedException>(() => client.GetResponseAsync([TinyModel.VideoQuestion()]));
    }
}
