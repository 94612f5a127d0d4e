using VidKV.AI.Backend;

namespace VidKV.AI.Connector.Tests.ChatCompletion;

/// <summary>One client over the random checkpoint, shared by a test class (the model loads once).</summary>
public sealed class ClientFixture : IDisposable
{
    public ClientFixture()
    {
        Client = new VidKVChatClient(TinyModel.Options());
    }

    public VidKVChatClient Client { get; }

    public VideoLanguageModel Model => (VideoLanguageModel)Client.GetService(typeof(VideoLanguageModel))!;

    /// <summary>Tensors alive on the inference thread (the model's parameters included).</summary>
    public Task<long> LiveTensorsAsync() => Client.Worker.RunAsync(_ => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);

    public void Dispose() => Client.Dispose();
}
