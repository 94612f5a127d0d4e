using SkiaSharp;
using VidKV.AI.Backend.Media;
using System.Globalization;
using static TorchSharp.torch;

namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// Writes synthetic samples (or any uint8 RGB clip) as an H.264 mp4 or an animated GIF through the <c>ffmpeg</c>
/// command line, for demos and tests. Raw rgb24 frames are piped into <c>ffmpeg -f rawvideo</c>; every frame becomes
/// one frame of the file.
/// </summary>
/// <remarks>
/// <para>
/// ffmpeg is looked up in the folder named by the <c>VIDKV_FFMPEG_DIR</c> environment variable when it is set,
/// otherwise on PATH (Debian/Ubuntu: <c>apt-get install ffmpeg</c>).
/// </para>
/// <para>
/// mp4: libx264, yuv420p, CRF 18; an odd width or height is padded by one pixel of black (4:2:0 needs even sizes).
/// GIF: one 256-colour palette computed from the whole clip, no dithering, looping forever.
/// </para>
/// <para>Stateless and thread-safe; each call runs its own ffmpeg process.</para>
/// </remarks>
public static class SampleWriter
{
    /// <summary>The frame rate used when none is given.</summary>
    public const int DefaultFramesPerSecond = 8;

    /// <summary>Writes a sample's video, at its own size, as an H.264 mp4.</summary>
    /// <param name="sample">The sample.</param>
    /// <param name="path">The output file; its folder must exist; an existing file is replaced.</param>
    /// <param name="framesPerSecond">The frame rate, 1 to 120.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesPerSecond"/> is outside 1 to 120.</exception>
    /// <exception cref="DirectoryNotFoundException">The output folder does not exist.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg was not found; the message says how to install it.</exception>
    /// <exception cref="IOException">ffmpeg failed; the message holds its error output.</exception>
    public static void WriteMp4(VideoQaSample sample, string path, int framesPerSecond = DefaultFramesPerSecond)
    {
        ArgumentNullException.ThrowIfNull(sample);
        Write(SceneRenderer.RenderRgb(sample.Scene, sample.Width, sample.Height), sample.FrameCount, sample.Width, sample.Height, path, framesPerSecond, gif: false);
    }

    /// <summary>Writes a clip as an H.264 mp4.</summary>
    /// <param name="frames">uint8 <c>[F, H, W, 3]</c>, RGB, on any device.</param>
    /// <param name="path">The output file; its folder must exist; an existing file is replaced.</param>
    /// <param name="framesPerSecond">The frame rate, 1 to 120.</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="frames"/> is not uint8 <c>[F, H, W, 3]</c> with positive sizes.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesPerSecond"/> is outside 1 to 120.</exception>
    /// <exception cref="DirectoryNotFoundException">The output folder does not exist.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg was not found; the message says how to install it.</exception>
    /// <exception cref="IOException">ffmpeg failed; the message holds its error output.</exception>
    public static void WriteMp4(Tensor frames, string path, int framesPerSecond = DefaultFramesPerSecond)
    {
        var (rgb, count, width, height) = ToRgb(frames);
        Write(rgb, count, width, height, path, framesPerSecond, gif: false);
    }

    /// <summary>Writes a sample's video, at its own size, as an animated GIF.</summary>
    /// <param name="sample">The sample.</param>
    /// <param name="path">The output file; its folder must exist; an existing file is replaced.</param>
    /// <param name="framesPerSecond">The frame rate, 1 to 120 (GIF stores delays in hundredths of a second).</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesPerSecond"/> is outside 1 to 120.</exception>
    /// <exception cref="DirectoryNotFoundException">The output folder does not exist.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg was not found; the message says how to install it.</exception>
    /// <exception cref="IOException">ffmpeg failed; the message holds its error output.</exception>
    public static void WriteGif(VideoQaSample sample, string path, int framesPerSecond = DefaultFramesPerSecond)
    {
        ArgumentNullException.ThrowIfNull(sample);
        Write(SceneRenderer.RenderRgb(sample.Scene, sample.Width, sample.Height), sample.FrameCount, sample.Width, sample.Height, path, framesPerSecond, gif: true);
    }

    /// <summary>Writes a clip as an animated GIF.</summary>
    /// <param name="frames">uint8 <c>[F, H, W, 3]</c>, RGB, on any device.</param>
    /// <param name="path">The output file; its folder must exist; an existing file is replaced.</param>
    /// <param name="framesPerSecond">The frame rate, 1 to 120 (GIF stores delays in hundredths of a second).</param>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="frames"/> is not uint8 <c>[F, H, W, 3]</c> with positive sizes.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="framesPerSecond"/> is outside 1 to 120.</exception>
    /// <exception cref="DirectoryNotFoundException">The output folder does not exist.</exception>
    /// <exception cref="FfmpegNotFoundException">ffmpeg was not found; the message says how to install it.</exception>
    /// <exception cref="IOException">ffmpeg failed; the message holds its error output.</exception>
    public static void WriteGif(Tensor frames, string path, int framesPerSecond = DefaultFramesPerSecond)
    {
        var (rgb, count, width, height) = ToRgb(frames);
        Write(rgb, count, width, height, path, framesPerSecond, gif: true);
    }

    /// <summary>
    /// Writes a sample's video as numbered PNG frames (frame_00001.png, ...) into <paramref name="folder"/>, created if needed:
    /// a video the library reads without ffmpeg (<c>FrameSources.Open(folder)</c>).
    /// </summary>
    /// <exception cref="ArgumentNullException">An argument is null.</exception>
    /// <exception cref="IOException">A frame could not be written.</exception>
    public static void WriteFrames(VideoQaSample sample, string folder)
    {
        ArgumentNullException.ThrowIfNull(sample);
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Directory.CreateDirectory(folder);
        byte[] rgb = SceneRenderer.RenderRgb(sample.Scene, sample.Width, sample.Height);
        int frameBytes = sample.Width * sample.Height * 3;
        var info = new SKImageInfo(sample.Width, sample.Height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        var rgba = new byte[sample.Width * sample.Height * 4];
        for (int f = 0; f < sample.FrameCount; f++)
        {
            var frame = rgb.AsSpan(f * frameBytes, frameBytes);
            for (int i = 0, j = 0; i < frame.Length; i += 3, j += 4)
            {
                rgba[j] = frame[i];
                rgba[j + 1] = frame[i + 1];
                rgba[j + 2] = frame[i + 2];
                rgba[j + 3] = 255;
            }

            System.Runtime.InteropServices.Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
            using var image = SKImage.FromBitmap(bitmap);
            using var png = image.Encode(SKEncodedImageFormat.Png, 100) ?? throw new IOException($"Frame {f + 1} of {sample.FrameCount} could not be encoded as PNG.");
            using var file = File.Create(Path.Combine(folder, $"frame_{f + 1:D5}.png"));
            png.SaveTo(file);
        }
    }

    private static (byte[] Rgb, int Count, int Width, int Height) ToRgb(Tensor frames)
    {
        ArgumentNullException.ThrowIfNull(frames);
        if (frames.dtype != ScalarType.Byte || frames.dim() != 4 || frames.shape[3] != 3 || frames.shape.Take(3).Any(s => s <= 0 || s > int.MaxValue))
        {
            throw new ArgumentException(
                $"Frames must be uint8 [F, H, W, 3] with positive sizes; got {frames.dtype} [{string.Join(", ", frames.shape)}].", nameof(frames));
        }

        using var cpu = frames.cpu().contiguous();
        return (cpu.data<byte>().ToArray(), (int)frames.shape[0], (int)frames.shape[2], (int)frames.shape[1]);
    }

    private static void Write(byte[] rgb, int count, int width, int height, string path, int framesPerSecond, bool gif)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (framesPerSecond < 1 || framesPerSecond > 120)
        {
            throw new ArgumentOutOfRangeException(nameof(framesPerSecond), framesPerSecond, "The frame rate must be 1 to 120 frames per second.");
        }

        string full = Path.GetFullPath(path);
        string? folder = Path.GetDirectoryName(full);
        if (folder is not null && !Directory.Exists(folder))
        {
            throw new DirectoryNotFoundException($"The output folder '{folder}' of '{path}' does not exist.");
        }

        var inv = CultureInfo.InvariantCulture;
        List<string> arguments =
        [
            "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", $"{width}x{height}", "-r", framesPerSecond.ToString(inv), "-i", "-",
        ];
        if (gif)
        {
            arguments.AddRange(["-filter_complex", "[0:v]split[a][b];[a]palettegen=stats_mode=full[p];[b][p]paletteuse=dither=none", "-loop", "0", "-f", "gif"]);
        }
        else
        {
            arguments.AddRange(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", "-movflags", "+faststart", "-f", "mp4"]);
        }

        arguments.Add(full);
        FfmpegTools.Run("ffmpeg", arguments, rgb.AsMemory(0, count * width * height * 3), $"writing {count} frames of {width}x{height} to '{full}'");
    }
}
