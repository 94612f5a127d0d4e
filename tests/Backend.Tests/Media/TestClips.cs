using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace VidKV.AI.Backend.Tests.Media;

/// <summary>
/// Media made at test time with ffmpeg's test sources (<c>-f lavfi</c>), once per test run, in a temporary folder
/// deleted when the test process exits. testsrc2 is a moving pattern with a frame counter, so every frame differs.
/// </summary>
internal static class TestClips
{
    private static readonly ConcurrentDictionary<string, Lazy<string>> Made = new(StringComparer.Ordinal);

    private static readonly Lazy<string> FolderPath = new(() =>
    {
        string folder = Directory.CreateTempSubdirectory("vidkv-media-tests-").FullName;
        AppDomain.CurrentDomain.ProcessExit += (_, _) =>
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException)
            {
            }
        };
        return folder;
    });

    /// <summary>The folder holding the clips.</summary>
    public static string Folder => FolderPath.Value;

    /// <summary>H.264 in MP4, 320x240 at 25 fps, 4 s (100 frames).</summary>
    public static string Mp4 => Make("h264.mp4", "-f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v libx264 -preset ultrafast -pix_fmt yuv420p");

    /// <summary>H.264 in MP4 with the index first (faststart), 320x240 at 25 fps, 4 s.</summary>
    public static string Mp4FastStart => Make("faststart.mp4", "-f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -movflags +faststart");

    /// <summary>VP9 in WebM, 160x120 at 15 fps, 3.4 s (51 frames).</summary>
    public static string WebM => Make("vp9.webm", "-f lavfi -i testsrc2=size=160x120:rate=15 -t 3.4 -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -b:v 500k");

    /// <summary>H.264 with B-frames in Matroska, 256x144 at 30 fps, 3 s (90 frames).</summary>
    public static string Mkv => Make("h264.mkv", "-f lavfi -i testsrc2=size=256x144:rate=30 -t 3 -c:v libx264 -preset veryfast -bf 2 -pix_fmt yuv420p");

    /// <summary>MPEG-4 part 2 in QuickTime, 176x144 at 12 fps, 5 s (60 frames).</summary>
    public static string Mov => Make("mpeg4.mov", "-f lavfi -i testsrc2=size=176x144:rate=12 -t 5 -c:v mpeg4 -q:v 3");

    /// <summary>Motion JPEG in AVI, 200x150 at 10 fps, 3 s (30 frames).</summary>
    public static string Avi => Make("mjpeg.avi", "-f lavfi -i testsrc2=size=200x150:rate=10 -t 3 -c:v mjpeg -q:v 3 -pix_fmt yuvj420p");

    /// <summary>H.264 with B-frames (an edit list) at NTSC's 30000/1001 fps in MP4, 192x108, 60 frames.</summary>
    public static string Ntsc => Make("ntsc.mp4", "-f lavfi -i testsrc2=size=192x108:rate=30000/1001 -frames:v 60 -c:v libx264 -preset veryfast -bf 3 -pix_fmt yuv420p");

    /// <summary>H.264 in MPEG-TS (which starts its clock at 1.4 s), 160x90 at 24 fps, 48 frames.</summary>
    public static string Ts => Make("h264.ts", "-f lavfi -i testsrc2=size=160x90:rate=24 -frames:v 48 -c:v libx264 -preset ultrafast -pix_fmt yuv420p");

    /// <summary>VP8 video with Opus audio in WebM, 144x108 at 20 fps, 2 s (40 frames).</summary>
    public static string WebMWithAudio => Make("vp8-opus.webm",
        "-f lavfi -i testsrc2=size=144x108:rate=20 -f lavfi -i sine=frequency=300:duration=2 -t 2 -c:v libvpx -deadline realtime -cpu-used 8 -b:v 400k -c:a libopus");

    /// <summary>A 1-second, 5-frame MP4 (fewer frames than usually asked for).</summary>
    public static string Short => Make("short.mp4", "-f lavfi -i testsrc2=size=128x96:rate=5 -t 1 -c:v libx264 -preset ultrafast -pix_fmt yuv420p");

    /// <summary>20 s at 10 fps with a keyframe every 10 frames (1 s): sampled frames far apart need separate seeks.</summary>
    public static string ShortGop => Make("gop10.mp4", "-f lavfi -i testsrc2=size=160x120:rate=10 -t 20 -c:v libx264 -preset ultrafast -g 10 -keyint_min 10 -sc_threshold 0 -pix_fmt yuv420p");

    /// <summary>20 s at 10 fps with a single keyframe: seeking cannot help, one pass decodes everything once.</summary>
    public static string SingleKeyframe => Make("gop-inf.mp4", "-f lavfi -i testsrc2=size=160x120:rate=10 -t 20 -c:v libx264 -preset ultrafast -g 1000 -keyint_min 1000 -sc_threshold 0 -pix_fmt yuv420p");

    /// <summary>The MP4 with a display matrix asking players to rotate (a phone's portrait video).</summary>
    public static string Rotated => Make("rotated.mp4", $"-i {Mp4} -c copy -metadata:s:v:0 rotate=90");

    /// <summary>Variable frame rate in MP4: frames 0-39 every 50 ms (20 fps), then 40-79 every 200 ms (5 fps); 10 s.</summary>
    public static string VariableRateMp4 => Make("vfr.mp4", VariableRateArguments);

    /// <summary>The same variable frame rate in Matroska, which stores no frame count.</summary>
    public static string VariableRateMkv => Make("vfr.mkv", VariableRateArguments);

    /// <summary>VP8 WebM written to a pipe, as a browser's MediaRecorder streams it: no duration, no index; 12 fps, 2.5 s.</summary>
    public static string LiveWebM => Made.GetOrAdd("live.webm", n => new Lazy<string>(() =>
    {
        string path = Path.Combine(Folder, n);
        Ffmpeg("-f lavfi -i testsrc2=size=160x120:rate=12 -t 2.5 -c:v libvpx -deadline realtime -cpu-used 8 -b:v 300k -f webm", "pipe:1", path);
        return path;
    })).Value;

    /// <summary>H.264 in MP4 at 8192x8192, 2 frames of grey: about 200 KB that declare 67 million pixels a frame.</summary>
    public static string Huge8192 => Make("huge-8192.mp4", "-f lavfi -i color=c=gray:s=8192x8192:r=2 -frames:v 2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p");

    /// <summary>An AAC sine tone in MP4: no video stream.</summary>
    public static string AudioOnly => Make("audio.m4a", "-f lavfi -i sine=frequency=440:duration=2 -c:a aac");

    /// <summary>An AVI whose video stream has no frames.</summary>
    public static string ZeroFrames => Make("zero.avi", "-f lavfi -i testsrc2=size=64x48:rate=10 -frames:v 0 -c:v mjpeg");

    /// <summary>An animated GIF, 96x72 at 10 fps (100 ms per frame), 2 s (20 frames).</summary>
    public static string Gif => Make("anim.gif", "-f lavfi -i testsrc2=size=96x72:rate=10 -t 2");

    /// <summary>An animated lossless WebP, 96x72 at 10 fps, 2 s (20 frames).</summary>
    public static string AnimatedWebP => Make("anim.webp", "-f lavfi -i testsrc2=size=96x72:rate=10 -t 2 -pix_fmt bgra -c:v libwebp_anim -lossless 1 -loop 0");

    /// <summary>The first half of <see cref="Mp4"/>: its index ('moov', written last) is gone.</summary>
    public static string TruncatedMp4 => Derive("truncated.mp4", Mp4, bytes => bytes[..(bytes.Length / 2)]);

    /// <summary>The first half of <see cref="Mp4FastStart"/>: the index survives, the frames after about 2 s do not.</summary>
    public static string TruncatedFastStart => Derive("truncated-faststart.mp4", Mp4FastStart, bytes => bytes[..(bytes.Length / 2)]);

    /// <summary>The first half of <see cref="WebM"/>: its header still declares 3.4 s, its frames stop after about 1.7 s.</summary>
    public static string TruncatedWebM => Derive("truncated.webm", WebM, bytes => bytes[..(bytes.Length / 2)]);

    /// <summary>A zero-byte file named .mp4.</summary>
    public static string Empty => Derive("empty.mp4", null, _ => Array.Empty<byte>());

    /// <summary>A text file named .mp4.</summary>
    public static string TextAsMp4 => Derive("notes.mp4", null, _ => "These are my meeting notes, not a video.\n"u8.ToArray());

    private const string VariableRateArguments =
        "-f lavfi -i testsrc2=size=160x120:rate=20 -frames:v 80 -vf setpts='if(lt(N,40),N/20,2+(N-40)/5)/TB' -fps_mode vfr -c:v libx264 -preset ultrafast -pix_fmt yuv420p";

    /// <summary>Runs ffmpeg with a command line split on spaces (arguments contain none) and fails the test on error.</summary>
    /// <param name="arguments">Everything but the output.</param>
    /// <param name="output">The output file, or "pipe:1" to write <paramref name="stdoutFile"/> from standard output.</param>
    /// <param name="stdoutFile">Where standard output goes when <paramref name="output"/> is a pipe.</param>
    public static void Ffmpeg(string arguments, string output, string? stdoutFile = null)
    {
        var info = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { "-hide_banner", "-loglevel", "error", "-nostdin", "-y" }.Concat(arguments.Split(' ', StringSplitOptions.RemoveEmptyEntries)))
        {
            info.ArgumentList.Add(a);
        }

        info.ArgumentList.Add(output);
        using var process = Process.Start(info)!;
        var error = process.StandardError.ReadToEndAsync();
        using (var sink = stdoutFile is null ? Stream.Null : File.Create(stdoutFile))
        {
            process.StandardOutput.BaseStream.CopyTo(sink);
        }

        process.WaitForExit();
        if (process.ExitCode != 0 || !File.Exists(stdoutFile ?? output))
        {
            throw new InvalidOperationException($"ffmpeg {arguments} {output} failed ({process.ExitCode}): {error.Result}");
        }
    }

    /// <summary>Every frame's presentation time in seconds, as ffprobe reports it.</summary>
    public static double[] FrameTimes(string path)
    {
        var info = new ProcessStartInfo("ffprobe") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[] { "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "csv=p=0", path })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(line => double.Parse(line.TrimEnd(','), CultureInfo.InvariantCulture)).Order().ToArray();
    }

    /// <summary>Frame <paramref name="index"/> (decode order = presentation index) as ffmpeg itself extracts it: rgb24 bytes.</summary>
    public static byte[] ExtractFrame(string path, long index)
    {
        var info = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (string a in new[]
                 {
                     "-hide_banner", "-loglevel", "error", "-nostdin", "-i", path, "-vf", $"select=eq(n\\,{index.ToString(CultureInfo.InvariantCulture)})",
                     "-fps_mode", "passthrough", "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1",
                 })
        {
            info.ArgumentList.Add(a);
        }

        using var process = Process.Start(info)!;
        using var memory = new MemoryStream();
        var errors = process.StandardError.ReadToEndAsync();
        process.StandardOutput.BaseStream.CopyTo(memory);
        process.WaitForExit();
        if (process.ExitCode != 0 || memory.Length == 0)
        {
            throw new InvalidOperationException($"extracting frame {index} of {path} failed: {errors.Result}");
        }

        return memory.ToArray();
    }

    private static string Make(string name, string arguments)
        => Made.GetOrAdd(name, n => new Lazy<string>(() =>
        {
            string path = Path.Combine(Folder, n);
            Ffmpeg(arguments, path);
            return path;
        })).Value;

    private static string Derive(string name, string? from, Func<byte[], byte[]> transform)
        => Made.GetOrAdd(name, n => new Lazy<string>(() =>
        {
            string path = Path.Combine(Folder, n);
            File.WriteAllBytes(path, transform(from is null ? Array.Empty<byte>() : File.ReadAllBytes(from)));
            return path;
        })).Value;
}
