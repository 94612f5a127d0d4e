using VidKV.AI.Backend.Media;

namespace VidKV.AI.Backend.Tests.Media;

/// <summary>Tests that change VIDKV_FFMPEG_DIR run alone: every other ffmpeg test reads it.</summary>
[CollectionDefinition(nameof(FfmpegEnvironmentCollection), DisableParallelization = true)]
public sealed class FfmpegEnvironmentCollection
{
}

[Collection(nameof(FfmpegEnvironmentCollection))]
public sealed class FfmpegEnvironmentTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-ffmpeg-env-").FullName;
    private readonly string? _saved = Environment.GetEnvironmentVariable(FfmpegOptions.BinaryFolderVariable);

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(FfmpegOptions.BinaryFolderVariable, _saved);
        Directory.Delete(_temp, recursive: true);
    }

    [Fact]
    public void BinaryFolderVariable_PointsToTheBinaries_AndAWrongFolderIsNamed()
    {
        string ffmpeg = FindOnPath("ffmpeg");
        Environment.SetEnvironmentVariable(FfmpegOptions.BinaryFolderVariable, _temp);

        var ex = Assert.Throws<FfmpegNotFoundException>(() => FrameSources.Open(TestClips.Mp4));

        Assert.Contains($"VIDKV_FFMPEG_DIR is '{_temp}'", ex.Message, StringComparison.Ordinal);
        Assert.Contains("apt-get install ffmpeg", ex.Message, StringComparison.Ordinal);

        Environment.SetEnvironmentVariable(FfmpegOptions.BinaryFolderVariable, Path.GetDirectoryName(ffmpeg));
        using var source = FrameSources.Open(TestClips.Mp4);
        Assert.Equal(100, source.Info.FrameCount);

        // Options win over the variable.
        Environment.SetEnvironmentVariable(FfmpegOptions.BinaryFolderVariable, _temp);
        using var fromOptions = FrameSources.Open(TestClips.Mp4, new FfmpegOptions { BinaryFolder = Path.GetDirectoryName(ffmpeg) });
        Assert.Equal(100, fromOptions.Info.FrameCount);
    }

    private static string FindOnPath(string name)
        => (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator)
            .Select(folder => Path.Combine(folder, name))
            .First(File.Exists);
}
