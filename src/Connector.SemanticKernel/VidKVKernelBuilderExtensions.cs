using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel.ChatCompletion;
using VidKV.AI.Connector;

namespace Microsoft.SemanticKernel;

/// <summary>Adds the VidKV video chat client and the <see cref="VideoPlugin"/> to a Semantic Kernel.</summary>
public static class VidKVKernelBuilderExtensions
{
    /// <summary>
    /// Registers a <see cref="VidKVChatClient"/> as the kernel's <see cref="IChatClient"/> and
    /// <see cref="IChatCompletionService"/>, so that <c>kernel.InvokePromptAsync</c> and chat completion use it.
    /// </summary>
    /// <param name="builder">The kernel builder.</param>
    /// <param name="configure">Sets options; <see langword="null"/> for the built-in model.</param>
    /// <param name="serviceId">A key to register it under, for kernels with several models; <see langword="null"/> for the default.</param>
    /// <returns>The builder.</returns>
    public static IKernelBuilder AddVidKVChatClient(this IKernelBuilder builder, Action<VidKVChatClientOptions>? configure = null, string? serviceId = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (serviceId is null)
        {
            builder.Services.AddVidKVChatClient(configure);
            builder.Services.AddSingleton(sp => sp.GetRequiredService<IChatClient>().AsChatCompletionService(sp));
        }
        else
        {
            builder.Services.AddKeyedVidKVChatClient(serviceId, configure);
            builder.Services.AddKeyedSingleton(serviceId, (sp, key) => sp.GetRequiredKeyedService<IChatClient>(key).AsChatCompletionService(sp));
        }

        return builder;
    }

    /// <summary>Adds the <see cref="VideoPlugin"/>, built over the kernel's <see cref="IChatClient"/>.</summary>
    /// <param name="plugins">The kernel builder's plugins.</param>
    /// <param name="pluginName">The plugin's name in function calls. Default <c>video</c>.</param>
    /// <returns>The plugins.</returns>
    public static IKernelBuilderPlugins AddVideoPlugin(this IKernelBuilderPlugins plugins, string pluginName = "video")
    {
        ArgumentNullException.ThrowIfNull(plugins);
        plugins.Services.AddSingleton(sp => KernelPluginFactory.CreateFromObject(new VideoPlugin(sp.GetRequiredService<IChatClient>(), sp.GetService<HttpClient>()), pluginName, sp.GetService<Microsoft.Extensions.Logging.ILoggerFactory>()));
        return plugins;
    }
}
