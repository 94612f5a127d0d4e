using VidKV.AI.Backend.Models.LlavaOnevision;

namespace VidKV.AI.Backend.Tests.Memory;

/// <summary>The built-in model (VidKV-Tiny), loaded once per test class that uses it.</summary>
public sealed class VideoMemoryFixture : IDisposable
{
    public VideoMemoryFixture() => Model = BuiltInModel.Load();

    public LlavaOnevisionVideoModel Model { get; }

    public void Dispose() => Model.Dispose();
}
