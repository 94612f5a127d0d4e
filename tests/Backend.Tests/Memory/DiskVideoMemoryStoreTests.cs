using VidKV.AI.Backend.Memory;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Tests.Media;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Backend.Tests.Memory;

/// <summary>The disk store through the generation loop: files shared by two models, damaged files ignored.</summary>
public sealed class DiskVideoMemoryStoreTests : IClassFixture<VideoMemoryFixture>, IDisposable
{
    private static readonly KVCacheOptions Compact = KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact);
    private readonly LlavaOnevisionVideoModel _model;
    private readonly string _folder = Directory.CreateTempSubdirectory("vidkv-memory-tests-").FullName;
    private readonly List<string> _warnings = new();
    private readonly SerializedVideoMemoryStore _store;

    public DiskVideoMemoryStoreTests(VideoMemoryFixture fixture)
    {
        _model = fixture.Model;
        _store = new SerializedVideoMemoryStore(new DiskVideoMemoryStore(_folder));
        _store.UnusableEntry += (_, reason) => _warnings.Add(reason);
        DiskOnly(_model);
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void SecondModel_AnswersFromTheFirstModelsFiles_WithoutEncoding()
    {
        var request = VideoMemoryTests.Ask("what color is the square?");
        var first = VideoMemoryTests.Run(_model, request, Compact);
        using var other = BuiltInModel.Load(); // another instance: no memory shared but the folder
        other.ConfigureVideoMemory(new VideoMemoryOptions { SharedStore = _store });

        var second = VideoMemoryTests.Run(other, request, Compact);

        Assert.Equal(0, other.VisualEncodes);
        Assert.Equal(0, other.MediaDecodes);
        Assert.True(second.Usage.CachedPromptTokens > 0);
        Assert.Equal(first.Tokens, second.Tokens);
        Assert.Equal(1, other.VideoMemory.InMemoryStore!.Count); // kept in memory too
        Assert.Empty(Directory.GetFiles(_folder, "*.tmp"));
        Assert.Empty(_warnings);
    }

    public static TheoryData<string> Damages => new() { "flip-header", "flip-payload", "flip-last", "truncate-half", "truncate-one", "empty", "foreign", "other-key" };

    [Theory]
    [MemberData(nameof(Damages))]
    public void DamagedFile_IsIgnoredWithAWarning_AndTheAnswerStaysTheSame(string damage)
    {
        var request = VideoMemoryTests.Ask("what shape moves left?");
        var fresh = VideoMemoryTests.Run(_model, request, Compact); // stores the video (and the conversation) on disk
        string[] files = Directory.GetFiles(_folder, "*" + DiskVideoMemoryStore.Extension);
        Assert.NotEmpty(files);
        var originals = files.ToDictionary(f => f, File.ReadAllBytes);
        foreach (string file in files)
        {
            Damage(file, originals, damage);
        }

        DiskOnly(_model);
        int encodes = _model.VisualEncodes;
        var again = VideoMemoryTests.Run(_model, request, Compact);

        Assert.Equal(fresh.Tokens, again.Tokens);
        Assert.Equal(0, again.Usage.CachedPromptTokens);
        Assert.Equal(encodes + 1, _model.VisualEncodes);
        Assert.NotEmpty(_warnings);
        // Computed again and stored whole: the next request reuses it.
        DiskOnly(_model);
        var third = VideoMemoryTests.Run(_model, request, Compact);
        Assert.True(third.Usage.CachedPromptTokens > 0);
        Assert.Equal(fresh.Tokens, third.Tokens);
    }

    [Fact]
    public void ForgetVideo_DeletesItsFiles()
    {
        VideoMemoryTests.Run(_model, VideoMemoryTests.Ask("what color is the square?"), Compact);
        VideoMemoryTests.Run(_model, VideoMemoryTests.Ask("what color is the square?", video: TestClips.Mkv), Compact);
        int before = Directory.GetFiles(_folder, "*" + DiskVideoMemoryStore.Extension).Length;

        int removed = _model.ForgetVideo(VidKV.AI.Backend.Media.MediaSource.FromFile(TestClips.Mp4));

        Assert.Equal(before / 2, removed);
        Assert.Equal(before / 2, Directory.GetFiles(_folder, "*" + DiskVideoMemoryStore.Extension).Length);
    }

    [Fact]
    public void BadKeys_AreRefused()
    {
        var disk = new DiskVideoMemoryStore(_folder);
        Assert.Throws<ArgumentException>(() => disk.PathOf("../escape"));
        Assert.Throws<ArgumentException>(() => disk.PathOf(""));
    }

    private void DiskOnly(VideoLanguageModelBase model)
        => model.ConfigureVideoMemory(new VideoMemoryOptions { MemoryBudgetBytes = 0, SharedStore = _store });

    private static void Damage(string file, Dictionary<string, byte[]> originals, string damage)
    {
        byte[] bytes = originals[file].ToArray();
        switch (damage)
        {
            case "flip-header": bytes[80] ^= 0x10; break; // in the entry's JSON header (after the file's 45-byte tag list)
            case "flip-payload": bytes[bytes.Length / 2] ^= 0x01; break;
            case "flip-last": bytes[^1] ^= 0x80; break;
            case "truncate-half": bytes = bytes[..(bytes.Length / 2)]; break;
            case "truncate-one": bytes = bytes[..^1]; break;
            case "empty": bytes = Array.Empty<byte>(); break;
            case "foreign": bytes = "not a video memory file at all"u8.ToArray(); break;
            case "other-key": bytes = originals.First(f => f.Key != file).Value; break; // another entry's whole, valid file
            default: throw new ArgumentException(damage);
        }

        File.WriteAllBytes(file, bytes);
    }
}
