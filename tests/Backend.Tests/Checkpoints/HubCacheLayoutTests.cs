using System.Security.Cryptography;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Text;
using VidKV.AI.Backend.Vision;

namespace VidKV.AI.Backend.Tests.Checkpoints;

/// <summary>
/// Checkpoint folders laid out as the Hugging Face Hub's cache lays them out: <c>models--org--name/snapshots/REV/FILE</c>
/// are relative symbolic links to <c>../../blobs/HASH</c> (SHA-256 for the weights, SHA-1 for the small files).
/// </summary>
public sealed class HubCacheLayoutTests : IDisposable
{
    private const string Revision = "0123456789abcdef0123456789abcdef01234567";
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-hub-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void SingleFileCheckpoint_OfRelativeLinks_LoadsAsTheOriginal()
    {
        string snapshot = MakeHubCache(Fixtures.Model, "models--vidkv--tiny");
        var weights = new FileInfo(Path.Combine(snapshot, "model.safetensors"));
        Assert.StartsWith("../../blobs/", weights.LinkTarget, StringComparison.Ordinal);
        Assert.NotEqual(new FileInfo(Path.Combine(Fixtures.Model, "model.safetensors")).Length, weights.Length); // the link's own size

        using var linked = VideoLanguageModel.Load(snapshot);
        using var original = VideoLanguageModel.Load(Fixtures.Model);

        Assert.Equal(snapshot, linked.Directory);
        AssertSameWeights(((LlavaOnevisionVideoModel)original).Model, ((LlavaOnevisionVideoModel)linked).Model);
        var a = (LlavaOnevisionVideoModel)original;
        var b = (LlavaOnevisionVideoModel)linked;
        Assert.Equal(a.Tokenizer.Encode("<|im_start|>user\nWhat moves?<|im_end|>"), b.Tokenizer.Encode("<|im_start|>user\nWhat moves?<|im_end|>"));
        foreach (var (x, y) in new[] { (a.ImagePreprocessor.Config, b.ImagePreprocessor.Config), (a.VideoPreprocessor.Config, b.VideoPreprocessor.Config) })
        {
            Assert.StartsWith(snapshot, y.Source, StringComparison.Ordinal);
            Assert.Equal(x.ImageMean, y.ImageMean);
            Assert.Equal(x.ImageStd, y.ImageStd);
            Assert.Equal(x.ImageGridPinpoints, y.ImageGridPinpoints);
            Assert.Equal((x.Height, x.Width, x.TileSize), (y.Height, y.Width, y.TileSize));
        }
    }

    [Fact]
    public void ShardedCheckpoint_OfRelativeLinks_LoadsIndexAndEveryShard()
    {
        string snapshot = MakeHubCache(Fixtures.ModelAlt, "models--vidkv--tiny-sharded");
        foreach (string file in Directory.EnumerateFiles(snapshot))
        {
            Assert.NotNull(new FileInfo(file).LinkTarget);
        }

        using var linked = LlavaOnevisionModel.Load(snapshot);
        using var original = LlavaOnevisionModel.Load(Fixtures.ModelAlt);
        AssertSameWeights(original, linked);

        using var checkpoint = CheckpointFolder.Open(snapshot);
        Assert.Equal(3, checkpoint.Names.Select(n => checkpoint.FileOf(n).Path).Distinct().Count());
        Assert.NotNull(Qwen2Tokenizer.FromDirectory(snapshot));
        Assert.NotNull(AnyResImagePreprocessor.FromCheckpoint(snapshot));
    }

    [Fact]
    public void LinkToNothing_FailsAsMissingNamingTheFile()
    {
        string snapshot = MakeHubCache(Fixtures.Model, "models--vidkv--dangling");
        string blob = Path.GetFullPath(Path.Combine(snapshot, new FileInfo(Path.Combine(snapshot, "model.safetensors")).LinkTarget!));
        File.Delete(blob);

        var ex = Assert.Throws<FileNotFoundException>(() => LlavaOnevisionModel.Load(snapshot));

        Assert.Contains("model.safetensors", ex.Message, StringComparison.Ordinal);
    }

    private static void AssertSameWeights(LlavaOnevisionModel expected, LlavaOnevisionModel actual)
    {
        var other = actual.named_parameters().ToDictionary(p => p.name, p => p.parameter);
        Assert.Equal(expected.named_parameters().Count(), other.Count);
        foreach (var (name, p) in expected.named_parameters())
        {
            Assert.True(p.eq(other[name]).all().item<bool>(), $"{name} differs between the folder and its Hub-cache copy");
        }
    }

    /// <summary>Copies a folder into a Hub cache: blobs by content hash, the snapshot's files relative links to them, refs/main.</summary>
    private string MakeHubCache(string source, string repository)
    {
        string root = Path.Combine(_temp, "hub", repository);
        string blobs = Path.Combine(root, "blobs");
        string snapshot = Path.Combine(root, "snapshots", Revision);
        Directory.CreateDirectory(blobs);
        Directory.CreateDirectory(snapshot);
        Directory.CreateDirectory(Path.Combine(root, "refs"));
        File.WriteAllText(Path.Combine(root, "refs", "main"), Revision);
        foreach (string file in Directory.EnumerateFiles(source))
        {
            var bytes = File.ReadAllBytes(file);
            string hash = Convert.ToHexStringLower(file.EndsWith(".safetensors", StringComparison.Ordinal) ? SHA256.HashData(bytes) : SHA1.HashData(bytes));
            File.WriteAllBytes(Path.Combine(blobs, hash), bytes);
            File.CreateSymbolicLink(Path.Combine(snapshot, Path.GetFileName(file)), $"../../blobs/{hash}");
        }

        return snapshot;
    }
}
