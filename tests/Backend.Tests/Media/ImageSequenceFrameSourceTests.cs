using VidKV.AI.Backend.Media;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Media;

public sealed class ImageSequenceFrameSourceTests : IDisposable
{
    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-seq-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void FromFolder_SortsNaturallyAndTimesFramesAtTheStatedRate()
    {
        using var scope = NewDisposeScope();
        for (int i = 1; i <= 12; i++)
        {
            // frame1 ... frame12: plain string order would put frame10 before frame2. Each frame's value is 10 * i.
            ImageFilesTests.WritePng(full(new long[] { 6, 8, 3 }, 10 * i, ScalarType.Byte), Path.Combine(_temp, $"frame{i}.png"));
        }

        File.WriteAllText(Path.Combine(_temp, "notes.txt"), "not a frame");
        using var source = ImageSequenceFrameSource.FromFolder(_temp, framesPerSecond: 2);

        var frames = source.Sample(new FrameSamplingOptions { FrameCount = 4 }).ToList();

        Assert.Equal(Enumerable.Range(1, 12).Select(i => $"frame{i}.png"), source.Files.Select(Path.GetFileName));
        Assert.Equal(new MediaInfo(_temp, "frames", "png", 8, 6, TimeSpan.FromSeconds(6), 2, 12), source.Info);
        Assert.Equal(new long[] { 0, 3, 7, 11 }, frames.Select(f => f.SourceIndex));
        Assert.Equal(new[] { 0, 1.5, 3.5, 5.5 }, frames.Select(f => f.Timestamp.TotalSeconds));
        Assert.Equal(new[] { 10, 40, 80, 120 }, frames.Select(f => (int)f.Rgb[0, 0, 0].item<byte>()));
    }

    [Fact]
    public void FromFiles_KeepsTheGivenOrder_AndSamplesPerSecond()
    {
        using var scope = NewDisposeScope();
        var files = new List<string>();
        for (int i = 0; i < 6; i++)
        {
            files.Add(Path.Combine(_temp, $"{(char)('f' - i)}.png")); // names in reverse alphabetical order
            ImageFilesTests.WritePng(full(new long[] { 4, 4, 3 }, i, ScalarType.Byte), files[^1]);
        }

        using var source = FrameSources.FromFiles(files); // 1 frame per second by default

        var frames = source.Sample(new FrameSamplingOptions { FramesPerSecond = 0.5, Start = TimeSpan.FromSeconds(1) }).ToList();

        Assert.Equal(new long[] { 1, 3, 5 }, frames.Select(f => f.SourceIndex));
        Assert.Equal(new[] { 1, 3, 5 }, frames.Select(f => (int)f.Rgb[0, 0, 0].item<byte>()));
    }

    [Fact]
    public void FramesOfDifferentSizes_AreRejectedNamingBoth()
    {
        using var scope = NewDisposeScope();
        string a = Path.Combine(_temp, "a.png"), b = Path.Combine(_temp, "b.png");
        ImageFilesTests.WritePng(zeros(new long[] { 4, 6, 3 }, ScalarType.Byte), a);
        ImageFilesTests.WritePng(zeros(new long[] { 5, 6, 3 }, ScalarType.Byte), b);

        var ex = Assert.Throws<InvalidDataException>(() => ImageSequenceFrameSource.FromFolder(_temp));

        Assert.Contains($"'{b}' is 6x5 but '{a}' is 6x4", ex.Message, StringComparison.Ordinal);
        Assert.Contains("one size", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Errors_NameTheFolderOrFile()
    {
        string missing = Path.Combine(_temp, "nowhere");
        Assert.Contains(missing, Assert.Throws<DirectoryNotFoundException>(() => ImageSequenceFrameSource.FromFolder(missing)).Message, StringComparison.Ordinal);

        string empty = Directory.CreateDirectory(Path.Combine(_temp, "empty")).FullName;
        var none = Assert.Throws<InvalidDataException>(() => FrameSources.Open(empty));
        Assert.Contains("zero frames", none.Message, StringComparison.Ordinal);

        string text = Path.Combine(_temp, "frame.png");
        File.WriteAllText(text, "not an image");
        var notImage = Assert.Throws<InvalidDataException>(() => FrameSources.FromFiles(new[] { text }));
        Assert.Contains(text, notImage.Message, StringComparison.Ordinal);

        string gone = Path.Combine(_temp, "gone.png");
        Assert.Equal(gone, Assert.Throws<FileNotFoundException>(() => FrameSources.FromFiles(new[] { gone })).FileName);
        Assert.Throws<ArgumentException>(() => FrameSources.FromFiles(Array.Empty<string>()));
        Assert.Throws<ArgumentOutOfRangeException>(() => FrameSources.FromFiles(new[] { text }, 0));
    }
}
