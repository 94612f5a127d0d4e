using static TorchSharp.torch;

namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// Renders synthetic scenes to RGB frames in plain C#: a dark background with seeded noise, then every visible object,
/// antialiased (4x4 samples per edge pixel). Pixels an object covers fully hold exactly its palette colour.
/// </summary>
/// <remarks>
/// Deterministic: the same scene and size give the same bytes on every run and platform (integer noise, literal shape
/// vertices, no trigonometry). Frames of a clip are drawn in parallel; a 256-frame 96x96 clip takes a few milliseconds.
/// Stateless and thread-safe. Tensors returned are on the CPU, owned (and disposed) by the caller.
/// </remarks>
public static class SceneRenderer
{
    /// <summary>Renders every frame of a sample at its own size.</summary>
    /// <param name="sample">The sample.</param>
    /// <returns>uint8 <c>[F, H, W, 3]</c>, RGB.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sample"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The sample's size is outside 16 to 1024.</exception>
    public static Tensor Render(VideoQaSample sample)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return Render(sample.Scene, sample.Width, sample.Height);
    }

    /// <summary>Renders every frame of a sample at another size.</summary>
    /// <param name="sample">The sample.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <returns>uint8 <c>[F, H, W, 3]</c>, RGB.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sample"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is outside 16 to 1024.</exception>
    public static Tensor Render(VideoQaSample sample, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return Render(sample.Scene, width, height);
    }

    /// <summary>Renders every frame of a scene.</summary>
    /// <param name="scene">The scene.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <returns>uint8 <c>[F, H, W, 3]</c>, RGB.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="scene"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is outside 16 to 1024.</exception>
    public static Tensor Render(SceneSpec scene, int width, int height)
    {
        byte[] rgb = RenderRgb(scene, width, height);
        return tensor(rgb, [scene.FrameCount, height, width, 3], ScalarType.Byte);
    }

    /// <summary>Renders the given frames of a scene, in the given order (each equal to that frame of a whole render).</summary>
    /// <param name="scene">The scene.</param>
    /// <param name="frames">Frame indices, each 0 to <see cref="SceneSpec.FrameCount"/> - 1.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <returns>uint8 <c>[frames.Count, H, W, 3]</c>, RGB.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="scene"/> or <paramref name="frames"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A frame index or a size is out of range.</exception>
    public static Tensor Render(SceneSpec scene, IReadOnlyList<long> frames, int width, int height) =>
        tensor(RenderRgb(scene, frames, width, height), [frames.Count, height, width, 3], ScalarType.Byte);

    /// <summary>Renders one frame of a sample at its own size.</summary>
    /// <param name="sample">The sample.</param>
    /// <param name="frameIndex">The frame, 0 to <see cref="VideoQaSample.FrameCount"/> - 1.</param>
    /// <returns>uint8 <c>[H, W, 3]</c>, RGB.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="sample"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameIndex"/> or the size is out of range.</exception>
    public static Tensor RenderFrame(VideoQaSample sample, int frameIndex)
    {
        ArgumentNullException.ThrowIfNull(sample);
        return RenderFrame(sample.Scene, frameIndex, sample.Width, sample.Height);
    }

    /// <summary>Renders one frame of a scene.</summary>
    /// <param name="scene">The scene.</param>
    /// <param name="frameIndex">The frame, 0 to <see cref="SceneSpec.FrameCount"/> - 1.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <returns>uint8 <c>[H, W, 3]</c>, RGB; equal to frame <paramref name="frameIndex"/> of <see cref="Render(SceneSpec, int, int)"/>.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="scene"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameIndex"/> or a size is out of range.</exception>
    public static Tensor RenderFrame(SceneSpec scene, int frameIndex, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(scene);
        CheckSize(width, height);
        byte[] rgb = new byte[width * height * 3];
        RenderFrameRgb(scene, frameIndex, width, height, rgb);
        return tensor(rgb, [height, width, 3], ScalarType.Byte);
    }

    /// <summary>Renders every frame of a scene into one rgb24 byte array (frame-major, then rows, then pixels), as ffmpeg's <c>rawvideo</c> reads it.</summary>
    /// <param name="scene">The scene.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <returns><c>F * H * W * 3</c> bytes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="scene"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is outside 16 to 1024.</exception>
    /// <exception cref="OutOfMemoryException">The clip is larger than an array can hold.</exception>
    public static byte[] RenderRgb(SceneSpec scene, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(scene);
        CheckSize(width, height);
        int frameBytes = width * height * 3;
        long total = (long)frameBytes * scene.FrameCount;
        if (total > Array.MaxLength)
        {
            throw new OutOfMemoryException($"{scene.FrameCount} frames of {width}x{height} need {total} bytes, more than one array holds ({Array.MaxLength}).");
        }

        byte[] rgb = new byte[total];
        Parallel.For(0, scene.FrameCount, f => FrameRasterizer.Draw(scene, f, width, height, rgb.AsSpan(f * frameBytes, frameBytes)));
        return rgb;
    }

    /// <summary>Renders the given frames of a scene into one rgb24 byte array, in the given order.</summary>
    /// <param name="scene">The scene.</param>
    /// <param name="frames">Frame indices, each 0 to <see cref="SceneSpec.FrameCount"/> - 1.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <returns><c>frames.Count * H * W * 3</c> bytes.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="scene"/> or <paramref name="frames"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A frame index or a size is out of range.</exception>
    public static byte[] RenderRgb(SceneSpec scene, IReadOnlyList<long> frames, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(scene);
        ArgumentNullException.ThrowIfNull(frames);
        CheckSize(width, height);
        foreach (long f in frames)
        {
            if (f < 0 || f >= scene.FrameCount)
            {
                throw new ArgumentOutOfRangeException(nameof(frames), f, $"Frame indices must be 0 to {scene.FrameCount - 1}.");
            }
        }

        int frameBytes = width * height * 3;
        byte[] rgb = new byte[(long)frameBytes * frames.Count];
        Parallel.For(0, frames.Count, i => FrameRasterizer.Draw(scene, (int)frames[i], width, height, rgb.AsSpan(i * frameBytes, frameBytes)));
        return rgb;
    }

    /// <summary>Renders one frame of a scene into rgb24 bytes.</summary>
    /// <param name="scene">The scene.</param>
    /// <param name="frameIndex">The frame, 0 to <see cref="SceneSpec.FrameCount"/> - 1.</param>
    /// <param name="width">The width in pixels, 16 to 1024.</param>
    /// <param name="height">The height in pixels, 16 to 1024.</param>
    /// <param name="destination">At least <c>H * W * 3</c> bytes; the first that many are overwritten.</param>
    /// <exception cref="ArgumentNullException"><paramref name="scene"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="frameIndex"/> or a size is out of range.</exception>
    /// <exception cref="ArgumentException"><paramref name="destination"/> is too short.</exception>
    public static void RenderFrameRgb(SceneSpec scene, int frameIndex, int width, int height, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(scene);
        CheckSize(width, height);
        if (frameIndex < 0 || frameIndex >= scene.FrameCount)
        {
            throw new ArgumentOutOfRangeException(nameof(frameIndex), frameIndex, $"The frame index must be 0 to {scene.FrameCount - 1}.");
        }

        int frameBytes = width * height * 3;
        if (destination.Length < frameBytes)
        {
            throw new ArgumentException($"The destination holds {destination.Length} bytes; a {width}x{height} rgb24 frame needs {frameBytes}.", nameof(destination));
        }

        FrameRasterizer.Draw(scene, frameIndex, width, height, destination[..frameBytes]);
    }

    private static void CheckSize(int width, int height)
    {
        if (width < SceneOptions.MinSide || width > SceneOptions.MaxSide)
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, $"The width must be {SceneOptions.MinSide} to {SceneOptions.MaxSide} pixels.");
        }

        if (height < SceneOptions.MinSide || height > SceneOptions.MaxSide)
        {
            throw new ArgumentOutOfRangeException(nameof(height), height, $"The height must be {SceneOptions.MinSide} to {SceneOptions.MaxSide} pixels.");
        }
    }
}
