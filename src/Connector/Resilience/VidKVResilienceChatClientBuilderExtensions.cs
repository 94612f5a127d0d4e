using Microsoft.Extensions.DependencyInjection;
using Polly;
using Polly.Registry;
using VidKV.AI.Connector;

namespace Microsoft.Extensions.AI;

/// <summary>Adds <see cref="VidKVResilienceChatClient"/> to a chat client pipeline.</summary>
public static class VidKVResilienceChatClientBuilderExtensions
{
    /// <summary>Runs each request's phase before its first token through <paramref name="pipeline"/>.</summary>
    public static ChatClientBuilder UseVidKVResilience(this ChatClientBuilder builder, ResiliencePipeline pipeline)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(pipeline);
        return builder.Use(inner => new VidKVResilienceChatClient(inner, pipeline));
    }

    /// <summary>
    /// Runs each request's phase before its first token through the pipeline registered with
    /// <c>services.AddResiliencePipeline(pipelineKey, ...)</c>.
    /// </summary>
    public static ChatClientBuilder UseVidKVResilience(this ChatClientBuilder builder, string pipelineKey)
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentException.ThrowIfNullOrEmpty(pipelineKey);
        return builder.Use((inner, services) =>
            new VidKVResilienceChatClient(inner, services.GetRequiredService<ResiliencePipelineProvider<string>>().GetPipeline(pipelineKey)));
    }
}
