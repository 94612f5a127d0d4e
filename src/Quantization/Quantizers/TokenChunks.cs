using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Runs a quantizer over runs of tokens (dimension -2) and joins the pieces. Only on the CPU, where small runs stay in
/// cache; a GPU is faster with one launch per operation over the whole tensor.
/// </summary>
internal static class TokenChunks
{
    /// <summary>Quantizes <paramref name="x"/> in runs of <paramref name="chunk"/> tokens and concatenates codes and metadata.</summary>
    public static QuantizedTensor Quantize(Tensor x, long chunk, Func<Tensor, QuantizedTensor> quantize, double metadataRowsPerToken)
    {
        long n = x.dim() >= 2 ? x.shape[^2] : 0;
        if (n <= chunk || !x.device.type.Equals(DeviceType.CPU))
        {
            return quantize(x);
        }

        using var scope = NewDisposeScope();
        var pieces = new List<QuantizedTensor>();
        try
        {
            for (long start = 0; start < n; start += chunk)
            {
                pieces.Add(quantize(x.narrow(-2, start, Math.Min(chunk, n - start))));
            }

            var first = pieces[0];
            var codes = cat(pieces.Select(p => p.Codes).ToList(), -2);
            var scale = first.Scale is null ? null : cat(pieces.Select(p => p.Scale!).ToList(), -3);
            var zero = first.Zero is null ? null : cat(pieces.Select(p => p.Zero!).ToList(), -3);
            var shape = (long[])first.Shape.Clone();
            shape[^2] = n;
            return new QuantizedTensor(codes, first.Format, shape, scale, zero);
        }
        finally
        {
            foreach (var p in pieces)
            {
                p.Dispose();
            }
        }
    }

    /// <summary>Dequantizes in runs of <paramref name="chunk"/> tokens and concatenates the result.</summary>
    public static Tensor Dequantize(QuantizedTensor q, long chunk, Func<QuantizedTensor, Tensor> dequantize, double metadataRowsPerToken)
    {
        long n = q.Shape.Length >= 2 ? q.Shape[^2] : 0;
        if (n <= chunk || !q.Codes.device.type.Equals(DeviceType.CPU))
        {
            return dequantize(q);
        }

        using var scope = NewDisposeScope();
        var parts = new List<Tensor>();
        for (long start = 0; start < n; start += chunk)
        {
            long count = Math.Min(chunk, n - start);
            long rowStart = (long)(start * metadataRowsPerToken), rows = (long)Math.Ceiling(count * metadataRowsPerToken);
            var shape = (long[])q.Shape.Clone();
            shape[^2] = count;
            using var view = QuantizedTensor.View(q.Codes.narrow(-2, start, count), q.Format, shape,
                q.Scale?.narrow(-3, rowStart, rows), q.Zero?.narrow(-3, rowStart, rows));
            parts.Add(dequantize(view));
        }

        return cat(parts, -2).MoveToOuterDisposeScope();
    }
}
