using Microsoft.Extensions.AI;
using Microsoft.Extensions.Caching.Distributed;
using Microsoft.Extensions.Caching.Hybrid;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Registry;
using Polly.Retry;
using Polly.Timeout;
using VidKV.AI.Connector;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Registers a <see cref="VidKVChatClient"/> as the application's <see cref="IChatClient"/>.</summary>
/// <remarks>
/// The options are bound from configuration and/or a callback and validated when the host starts
/// (<c>ValidateOnStart</c>), so a wrong preset or path stops the application at start-up with a message naming it.
/// The model is loaded when the client is first resolved. The returned <see cref="ChatClientBuilder"/> composes with
/// <c>UseLogging</c>, <c>UseOpenTelemetry</c>, <c>UseFunctionInvocation</c> and any other middleware; the Polly
/// pipeline (<see cref="VidKVResilienceOptions"/>) sits innermost, right above the model.
/// </remarks>
public static class VidKVServiceCollectionExtensions
{
    /// <summary>The configuration section the options are usually bound from.</summary>
    public const string DefaultSectionName = "VidKV";

    /// <summary>The key of the resilience pipeline registered for the unkeyed client; keyed ones get <c>vidkv:{key}</c>.</summary>
    public const string DefaultPipelineKey = "vidkv";

    /// <summary>Registers the client (singleton) as <see cref="IChatClient"/> and <see cref="VidKVChatClient"/>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="configure">Sets options; <see langword="null"/> for the defaults (the built-in model).</param>
    /// <returns>The builder of the <see cref="IChatClient"/> pipeline, to add middleware.</returns>
    public static ChatClientBuilder AddVidKVChatClient(this IServiceCollection services, Action<VidKVChatClientOptions>? configure = null)
        => Add(services, null, null, configure);

    /// <summary>Registers the client with options bound from <paramref name="configuration"/> (e.g. the <c>VidKV</c> section).</summary>
    /// <param name="services">The services.</param>
    /// <param name="configuration">The section holding the options.</param>
    /// <param name="configure">Sets options after binding.</param>
    /// <returns>The builder of the <see cref="IChatClient"/> pipeline.</returns>
    public static ChatClientBuilder AddVidKVChatClient(this IServiceCollection services, IConfiguration configuration, Action<VidKVChatClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        return Add(services, null, configuration, configure);
    }

    /// <summary>Registers a keyed client: <c>GetRequiredKeyedService&lt;IChatClient&gt;(serviceKey)</c>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="serviceKey">The key.</param>
    /// <param name="configure">Sets options.</param>
    /// <returns>The builder of the keyed <see cref="IChatClient"/> pipeline.</returns>
    public static ChatClientBuilder AddKeyedVidKVChatClient(this IServiceCollection services, object serviceKey, Action<VidKVChatClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        return Add(services, serviceKey, null, configure);
    }

    /// <summary>Registers a keyed client with options bound from <paramref name="configuration"/>.</summary>
    /// <param name="services">The services.</param>
    /// <param name="serviceKey">The key.</param>
    /// <param name="configuration">The section holding the options.</param>
    /// <param name="configure">Sets options after binding.</param>
    /// <returns>The builder of the keyed <see cref="IChatClient"/> pipeline.</returns>
    public static ChatClientBuilder AddKeyedVidKVChatClient(this IServiceCollection services, object serviceKey, IConfiguration configuration, Action<VidKVChatClientOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(serviceKey);
        ArgumentNullException.ThrowIfNull(configuration);
        return Add(services, serviceKey, configuration, configure);
    }

    /// <summary>The name of the options instance of a client: the default name, or <c>VidKV:{key}</c>.</summary>
    public static string OptionsName(object? serviceKey) => serviceKey is null ? Options.Options.DefaultName : $"VidKV:{serviceKey}";

    private static ChatClientBuilder Add(IServiceCollection services, object? serviceKey, IConfiguration? configuration, Action<VidKVChatClientOptions>? configure)
    {
        ArgumentNullException.ThrowIfNull(services);
        string name = OptionsName(serviceKey);
        string pipelineKey = serviceKey is null ? DefaultPipelineKey : $"{DefaultPipelineKey}:{serviceKey}";
        var options = services.AddOptions<VidKVChatClientOptions>(name);
        if (configuration is not null)
        {
            options.Bind(configuration);
        }

        if (configure is not null)
        {
            options.Configure(configure);
        }

        options.ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<VidKVChatClientOptions>, VidKVChatClientOptionsValidator>());
        services.AddResiliencePipeline(pipelineKey, (pipeline, context) =>
            ConfigurePipeline(pipeline, context.ServiceProvider.GetRequiredService<IOptionsMonitor<VidKVChatClientOptions>>().Get(name).Resilience));

        VidKVChatClient Create(IServiceProvider sp) =>
            new(WithSharedVideoMemory(sp, sp.GetRequiredService<IOptionsMonitor<VidKVChatClientOptions>>().Get(name)), sp.GetService<ILoggerFactory>());

        IChatClient Protect(IServiceProvider sp, VidKVChatClient client) =>
            sp.GetRequiredService<IOptionsMonitor<VidKVChatClientOptions>>().Get(name).Resilience.Enabled
                ? new VidKVResilienceChatClient(client, sp.GetRequiredService<ResiliencePipelineProvider<string>>().GetPipeline(pipelineKey))
                : new OwnedChatClient(client);

        if (serviceKey is null)
        {
            services.AddSingleton(Create);
            return services.AddChatClient(sp => Protect(sp, sp.GetRequiredService<VidKVChatClient>()));
        }

        services.AddKeyedSingleton(serviceKey, (sp, _) => Create(sp));
        return services.AddKeyedChatClient(serviceKey, sp => Protect(sp, sp.GetRequiredKeyedService<VidKVChatClient>(serviceKey)));
    }

    /// <summary>
    /// The options a registered client runs with: the application's <see cref="HybridCache"/> as the shared video memory when
    /// the container has one over a distributed cache and the options leave it to the container (a copy; the options
    /// instance is not changed).
    /// </summary>
    internal static VidKVChatClientOptions WithSharedVideoMemory(IServiceProvider services, VidKVChatClientOptions options)
    {
        if (!options.VideoMemory || !options.UseHybridCacheFromServices || options.SharedVideoMemory is not null
            || !string.IsNullOrEmpty(options.VideoMemoryFolder)
            || services.GetService<HybridCache>() is not { } hybrid
            || services.GetService<IDistributedCache>() is null or MemoryDistributedCache)
        {
            // Without a distributed cache the HybridCache only holds in-process copies: the video memory keeps those already.
            return options;
        }

        var shared = options.Clone();
        shared.SharedVideoMemory = hybrid;
        return shared;
    }

    /// <summary>The default pipeline: retries of a full queue (exponential, jittered), then a per-attempt first-token timeout.</summary>
    internal static void ConfigurePipeline(ResiliencePipelineBuilder pipeline, VidKVResilienceOptions options)
    {
        if (options.MaxRetryAttempts > 0)
        {
            pipeline.AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<ModelBusyException>(e => e.Reason == ModelBusyReason.QueueFull),
                MaxRetryAttempts = options.MaxRetryAttempts,
                Delay = options.RetryDelay,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
            });
        }

        if (options.FirstTokenTimeout is { } timeout)
        {
            pipeline.AddTimeout(new TimeoutStrategyOptions { Timeout = timeout });
        }
    }

    /// <summary>The validator behind <c>ValidateOnStart</c>.</summary>
    private sealed class VidKVChatClientOptionsValidator : IValidateOptions<VidKVChatClientOptions>
    {
        public ValidateOptionsResult Validate(string? name, VidKVChatClientOptions options)
        {
            try
            {
                options.Validate();
                return ValidateOptionsResult.Success;
            }
            catch (ArgumentException e)
            {
                return ValidateOptionsResult.Fail(e.Message);
            }
        }
    }

    /// <summary>Keeps the DI-owned client out of the pipeline's disposal (the container disposes it).</summary>
    private sealed class OwnedChatClient(IChatClient inner) : DelegatingChatClient(inner)
    {
        protected override void Dispose(bool disposing)
        {
        }
    }
}
