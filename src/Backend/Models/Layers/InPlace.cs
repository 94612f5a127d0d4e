using TorchSharp;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Layers;

/// <summary>Element-wise updates done in place when autograd does not track the tensors (inference), else out of place.</summary>
internal static class InPlace
{
    /// <summary>a + b, written into <paramref name="a"/> (a fresh temporary of the caller) when neither needs gradients.</summary>
    public static Tensor Add(Tensor a, Tensor b) => a.requires_grad || b.requires_grad ? Scalars.Add(a, b) : a.add_(b);

    /// <summary>Bytes of the widest temporary a row chunk may create (see <see cref="ByRowChunks"/>).</summary>
    internal const long ChunkBytes = 24L << 20;

    /// <summary>
    /// f applied to x [..., D] in chunks of rows, written into one output, when x is on the CPU, autograd does not track
    /// the call (<paramref name="tracked"/> false) and f's widest temporary (<paramref name="widestRow"/> elements a row) would exceed <see cref="ChunkBytes"/>; else f(x).
    /// On the CPU this keeps every temporary of an MLP small enough to be served from memory the process already has:
    /// glibc maps requests over 64 MiB afresh in threads other than the main one, whatever its settings, and every fresh page
    /// costs a fault (the vision tower's MLP over 32 frames took 2.0 s whole against 0.74 s in per-frame chunks).
    /// </summary>
    public static Tensor ByRowChunks(Tensor x, long widestRow, long outputWidth, bool tracked, Func<Tensor, Tensor> f)
    {
        long rows = x.numel() / x.size(-1);
        long perChunk = Math.Max(1, ChunkBytes / (widestRow * x.element_size()));
        if (x.device_type != DeviceType.CPU || tracked || x.requires_grad || rows <= perChunk)
        {
            return f(x);
        }

        using var scope = NewDisposeScope();
        var flat = x.reshape(rows, x.size(-1));
        var output = empty(new[] { rows, outputWidth }, x.dtype, x.device);
        for (long start = 0; start < rows; start += perChunk)
        {
            using var chunk = NewDisposeScope();
            long n = Math.Min(perChunk, rows - start);
            output.narrow(0, start, n).copy_(f(flat.narrow(0, start, n)));
        }

        var shape = x.shape.ToArray();
        shape[^1] = outputWidth;
        return output.view(shape).MoveToOuterDisposeScope();
    }
}
