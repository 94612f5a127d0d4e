using System.Diagnostics;
using System.Globalization;
using VidKV.AI.Training.Synthetic;
using static TorchSharp.torch;

namespace VidKV.AI.Training.Tests.Synthetic;

/// <summary>
/// <see cref="SampleWriter"/> through the real ffmpeg (CI installs it; locally: apt-get install ffmpeg): every frame of
/// a sample becomes a frame of the file, as ffprobe counts them.
/// </summary>
public sealed class SampleWriterTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "vidkv-synthetic-" + Guid.NewGuid().ToString("N"));

    public SampleWriterTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void WriteMp4_Sample_FileHasEveryFrameAtTheSampleSize()
    {
        var sample = SceneGenerator.Generate(21, new SceneOptions { Family = QuestionFamily.MotionDirection, MinFrames = 40, MaxFrames = 40 });
        string path = Path.Combine(_dir, "sample.mp4");

        SampleWriter.WriteMp4(sample, path, framesPerSecond: 10);

        Assert.Equal($"h264,96,96,{sample.FrameCount}", Probe(path, "codec_name,width,height,nb_read_frames"));
    }

    [Fact]
    public void WriteMp4_OddSizeTensor_PaddedToEvenAndEveryFrameKept()
    {
        using var scope = NewDisposeScope();
        var sample = SceneGenerator.Generate(4, new SceneOptions { Family = QuestionFamily.Counting, MinFrames = 9, MaxFrames = 9 });
        string path = Path.Combine(_dir, "odd.mp4");

        SampleWriter.WriteMp4(SceneRenderer.Render(sample, 45, 31), path);

        Assert.Equal("46,32,9", Probe(path, "width,height,nb_read_frames"));
    }

    [Fact]
    public void WriteGif_NeedleSample_FileHasEveryFrame()
    {
        var sample = SceneGenerator.Generate(8, new SceneOptions { Family = QuestionFamily.Needle, MaxFrames = 80 });
        string path = Path.Combine(_dir, "needle.gif");

        SampleWriter.WriteGif(sample, path);

        Assert.Equal($"gif,96,96,{sample.FrameCount}", Probe(path, "codec_name,width,height,nb_read_frames"));
    }

    [Fact]
    public void WriteGif_MissingFolder_ThrowsNamingIt()
    {
        string path = Path.Combine(_dir, "missing", "x.gif");

        var e = Assert.Throws<DirectoryNotFoundException>(() => SampleWriter.WriteGif(SceneGenerator.Generate(0), path));

        Assert.Contains(Path.Combine(_dir, "missing"), e.Message);
    }

    [Fact]
    public void WriteMp4_WrongTensor_ThrowsNamingTheShape()
    {
        using var scope = NewDisposeScope();

        var e = Assert.Throws<ArgumentException>(() => SampleWriter.WriteMp4(zeros(2, 8, 8, 4, ScalarType.Byte), Path.Combine(_dir, "x.mp4")));

        Assert.Contains("[2, 8, 8, 4]", e.Message);
    }

    [Fact]
    public void Resolve_FolderWithoutFfmpeg_SaysWhatToInstall()
    {
        var inEmptyFolder = Assert.Throws<VidKV.AI.Backend.Media.FfmpegNotFoundException>(
            () => VidKV.AI.Backend.Media.FfmpegTools.Locate("ffmpeg", new VidKV.AI.Backend.Media.FfmpegOptions { BinaryFolder = _dir }));

        Assert.Contains(_dir, inEmptyFolder.Message);
        Assert.Contains("apt-get install ffmpeg", inEmptyFolder.Message);
    }

    private static string Probe(string path, string entries)
    {
        var start = new ProcessStartInfo(VidKV.AI.Backend.Media.FfmpegTools.Locate("ffprobe"))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string a in new[] { "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries", "stream=" + entries, "-of", "csv=p=0", path })
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd().Trim();
        string errors = process.StandardError.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"ffprobe failed: {errors}");
        return output.ToString(CultureInfo.InvariantCulture);
    }
}
