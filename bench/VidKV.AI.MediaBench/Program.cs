// Video sampling benchmark: 32 frames uniformly from a 1-hour 1280x720 clip and a 2-minute 1920x1080 clip (both
// synthetic, made once with ffmpeg and cached), through FrameSources + VideoFrames.LoadForModel at LLaVA-OneVision's
// 384x384 preprocessing. Each measurement runs in a child process, so that its peak memory is its own. ffmpeg's
// peak memory is read from /proc (VmHWM) while frames arrive: getrusage's ru_maxrss of children is useless here, as it
// counts the .NET parent's resident memory at fork time.
//   dotnet run -c Release --project bench/VidKV.AI.MediaBench -- [--cache DIR] [--frames N]
using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Vision;
using VidKV.AI.Quantization.Native;

return MediaBench.Run(args);

/// <summary>The benchmark.</summary>
internal static class MediaBench
{
    private static readonly (string Name, int Width, int Height, int Fps, int Seconds)[] Clips =
    {
        ("testsrc2-1280x720-30fps-3600s.mp4", 1280, 720, 30, 3600),
        ("testsrc2-1920x1080-30fps-120s.mp4", 1920, 1080, 30, 120),
    };

    public static int Run(string[] args)
    {
        try
        {
            string cache = Path.Combine(Path.GetTempPath(), "vidkv-mediabench");
            int frames = 32;
            string? measure = null;
            for (int i = 0; i < args.Length; i++)
            {
                string Value() => i + 1 < args.Length ? args[++i] : throw new ArgumentException($"{args[i]} needs a value.");
                switch (args[i])
                {
                    case "--cache": cache = Value(); break;
                    case "--frames": frames = int.Parse(Value(), CultureInfo.InvariantCulture); break;
                    case "--measure": measure = Value(); break;
                    default: throw new ArgumentException($"Unknown argument '{args[i]}'. Allowed: --cache DIR, --frames N.");
                }
            }

            return measure is null ? RunAll(cache, frames) : Measure(measure, frames);
        }
        catch (Exception ex) when (ex is ArgumentException or FormatException or InvalidDataException or FfmpegNotFoundException or IOException)
        {
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
    }

    private static int RunAll(string cache, int frames)
    {
        Directory.CreateDirectory(cache);
        Console.WriteLine($"machine: {Environment.ProcessorCount} cores, {RuntimeInformation.OSDescription}, {RuntimeInformation.ProcessArchitecture}, .NET {Environment.Version}; {FfmpegVersion()}");
        Console.WriteLine($"cache: {cache}");
        foreach (var clip in Clips)
        {
            string path = Path.Combine(cache, clip.Name);
            string command = $"ffmpeg -f lavfi -i testsrc2=size={clip.Width}x{clip.Height}:rate={clip.Fps} -t {clip.Seconds} -c:v libx264 -preset ultrafast -g 250 -pix_fmt yuv420p {clip.Name}";
            if (File.Exists(path))
            {
                Console.WriteLine($"clip {clip.Name}: cached ({new FileInfo(path).Length / 1e6:F0} MB), made by: {command}");
            }
            else
            {
                var made = Stopwatch.StartNew();
                Generate(clip.Width, clip.Height, clip.Fps, clip.Seconds, path);
                Console.WriteLine($"clip {clip.Name}: generated in {made.Elapsed.TotalSeconds:F0} s ({new FileInfo(path).Length / 1e6:F0} MB) by: {command}");
            }
        }

        Console.WriteLine();
        Console.WriteLine("| clip | frames | open (probe) | sample + preprocess | ffmpeg runs | ffmpeg wall | ffmpeg CPU | peak RSS (this process) | RSS before sampling | peak RSS (one ffmpeg) |");
        Console.WriteLine("|---|---|---|---|---|---|---|---|---|---|");
        string self = Environment.ProcessPath!;
        string dll = typeof(MediaBench).Assembly.Location;
        foreach (var clip in Clips)
        {
            var info = new ProcessStartInfo(self) { RedirectStandardOutput = true, UseShellExecute = false };
            if (Path.GetFileNameWithoutExtension(self) == "dotnet")
            {
                info.ArgumentList.Add(dll);
            }

            foreach (string a in new[] { "--measure", Path.Combine(cache, clip.Name), "--frames", frames.ToString(CultureInfo.InvariantCulture) })
            {
                info.ArgumentList.Add(a);
            }

            using var child = Process.Start(info)!;
            string line = child.StandardOutput.ReadToEnd().Trim();
            child.WaitForExit();
            Console.WriteLine(child.ExitCode == 0 ? line : $"| {clip.Name} | failed with exit code {child.ExitCode}: {line} |");
        }

        return 0;
    }

    /// <summary>One measurement, in its own process; prints one markdown table row.</summary>
    private static int Measure(string path, int frames)
    {
        TorchRuntime.EnsureLoaded();
        // LLaVA-OneVision (SigLIP) video preprocessing: 384x384 bicubic, rescale 1/255, mean and std 0.5.
        var preprocessor = new VideoFramePreprocessor(new PreprocessorConfig
        {
            Source = "llava-onevision-qwen2-0.5b-ov-hf video_processor (in code)",
            Height = 384,
            Width = 384,
            ImageMean = new[] { 0.5, 0.5, 0.5 },
            ImageStd = new[] { 0.5, 0.5, 0.5 },
        });
        using var proc = Process.GetCurrentProcess();
        var open = Stopwatch.StartNew();
        using var source = (FfmpegFrameSource)FrameSources.Open(path);
        double openSeconds = open.Elapsed.TotalSeconds;
        proc.Refresh();
        long before = proc.PeakWorkingSet64;
        var sample = Stopwatch.StartNew();
        using var video = VideoFrames.LoadForModel(source, new FrameSamplingOptions { FrameCount = frames }, preprocessor);
        double sampleSeconds = sample.Elapsed.TotalSeconds;
        proc.Refresh();
        double childCpu = ChildCpuSeconds();
        var stats = source.Statistics;
        var info = source.Info;
        Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{Path.GetFileName(path)}: {info.Width}x{info.Height}, {info.Duration.TotalSeconds:F0} s, {info.FrameCount} frames; keyframe interval {source.KeyframeInterval.TotalSeconds:F2} s; pixel values [{string.Join(", ", video.PixelValues.shape)}]; timestamps {string.Join(" ", video.Timestamps.Select(t => t.TotalSeconds.ToString("F1", CultureInfo.InvariantCulture)))}"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"| {Path.GetFileName(path)} ({info.Duration.TotalMinutes:F0} min {info.Width}x{info.Height}) | {video.Timestamps.Count} | {openSeconds:F2} s | {sampleSeconds:F2} s | {stats.Processes} | {stats.ProcessTime.TotalSeconds:F2} s | {childCpu:F2} s | {proc.PeakWorkingSet64 / 1048576.0:F0} MiB | {before / 1048576.0:F0} MiB | {stats.PeakDecoderMemory / 1048576.0:F0} MiB |"));
        return 0;
    }

    private static void Generate(int width, int height, int fps, int seconds, string path)
    {
        string part = path + ".part.mp4";
        var info = new ProcessStartInfo("ffmpeg") { UseShellExecute = false };
        foreach (string a in new[]
                 {
                     "-hide_banner", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i", $"testsrc2=size={width}x{height}:rate={fps}",
                     "-t", seconds.ToString(CultureInfo.InvariantCulture), "-c:v", "libx264", "-preset", "ultrafast", "-g", "250", "-pix_fmt", "yuv420p", part,
                 })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new IOException($"ffmpeg failed to make {path} (exit code {process.ExitCode}); is ffmpeg installed (sudo apt-get install ffmpeg)?");
        }

        File.Move(part, path, overwrite: true);
    }

    private static string FfmpegVersion()
    {
        try
        {
            var info = new ProcessStartInfo("ffmpeg", "-hide_banner -version") { RedirectStandardOutput = true, UseShellExecute = false };
            using var process = Process.Start(info)!;
            string first = process.StandardOutput.ReadLine() ?? "ffmpeg (unknown version)";
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return first;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "ffmpeg not found";
        }
    }

    /// <summary>CPU time of this process's finished children (Linux getrusage RUSAGE_CHILDREN).</summary>
    private static double ChildCpuSeconds()
    {
        if (!OperatingSystem.IsLinux() || getrusage(-1, out var usage) != 0)
        {
            return double.NaN;
        }

        return usage.UserSeconds + (usage.UserMicroseconds / 1e6) + usage.SystemSeconds + (usage.SystemMicroseconds / 1e6);
    }

    [DllImport("libc", SetLastError = true)]
#pragma warning disable SA1300, IDE1006 // the C name
    private static extern int getrusage(int who, out RUsage usage);
#pragma warning restore SA1300, IDE1006

    /// <summary>struct rusage on 64-bit Linux: two timevals, then 14 longs (ru_maxrss first, in KiB).</summary>
    [StructLayout(LayoutKind.Sequential)]
    private struct RUsage
    {
        public long UserSeconds;
        public long UserMicroseconds;
        public long SystemSeconds;
        public long SystemMicroseconds;
        public long MaxRss;
        public long Ixrss;
        public long Idrss;
        public long Isrss;
        public long Minflt;
        public long Majflt;
        public long Nswap;
        public long Inblock;
        public long Oublock;
        public long Msgsnd;
        public long Msgrcv;
        public long Nsignals;
        public long Nvcsw;
        public long Nivcsw;
    }
}
