using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.LlavaOnevision;
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

    public LlavaOnevisionVideoModel Model => (LlavaOnevisionVideoModel)Client.GetService(typeof(LlavaOnevisionVideoModel))!;

    /// <summary>Tensors alive on the inference thread (the model's parameters included).</summary>
    public Task<long> LiveTensorsAsync() => Client.Worker.RunAsync(_ => TorchSharp.DisposeScopeManager.Statistics.ThreadTotalLiveCount);

    public void Dispose() => Client.Dispose();
}
