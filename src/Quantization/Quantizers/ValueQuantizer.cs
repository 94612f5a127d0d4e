using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>
/// Quantizes values [B, H, N, D] with one quantizer, or, with semantic token protection, the protected tokens with
/// a second (higher-precision) quantizer and the rest with the first.
/// </summary>
internal sealed class ValueQuantizer
{
    /// <summary>Creates the quantizer.</summary>
    /// <param name="main">Quantizer of all (or all unprotected) tokens.</param>
    /// <param name="protectedQuantizer">Quantizer of protected tokens; required with <paramref name="protection"/>.</param>
    /// <param name="protection">Protected-token selection, or <see langword="null"/> for none.</param>
    public ValueQuantizer(TensorQuantizer main, TensorQuantizer? protectedQuantizer = null, SemanticTokenProtection? protection = null)
    {
        ArgumentNullException.ThrowIfNull(main);
        if ((protection is null) != (protectedQuantizer is null))
        {
            throw new ArgumentException("Semantic token protection needs both a protection selector and a quantizer for protected tokens.", nameof(protectedQuantizer));
        }

        Main = main;
        ProtectedQuantizer = protectedQuantizer;
        Protection = protection;
    }

    /// <summary>Quantizer of all (or all unprotected) tokens.</summary>
    public TensorQuantizer Main { get; }

    /// <summary>Quantizer of protected tokens, if any.</summary>
    public TensorQuantizer? ProtectedQuantizer { get; }

    /// <summary>Protected-token selection, if any.</summary>
    public SemanticTokenProtection? Protection { get; }

    /// <summary>Quantizes values; <paramref name="scores"/> [B, N] is used only with protection.</summary>
    public QuantizedValues Quantize(Tensor values, Tensor? scores)
    {
        ArgumentNullException.ThrowIfNull(values);
        using var scope = NewDisposeScope();
        var chosen = Protection is not null && scores is not null ? Protection.SelectProtected(scores) : null;
        if (chosen is null)
        {
            return new QuantizedValues(values.shape, null, null, Main.Quantize(values));
        }

        var rest = Complement(chosen, values.shape[2]);
        var protectedValues = ProtectedQuantizer!.Quantize(Gather(values, chosen));
        var restValues = Main.Quantize(Gather(values, rest));
        return new QuantizedValues(values.shape, chosen, protectedValues, restValues);
    }

    /// <summary>Reconstructs float32 values [B, H, N, D].</summary>
    public Tensor Dequantize(QuantizedValues q)
    {
        ArgumentNullException.ThrowIfNull(q);
        using var scope = NewDisposeScope();
        var rest = Main.Dequantize(q.Rest);
        if (q.ProtectedTokens is null)
        {
            return rest.MoveToOuterDisposeScope();
        }

        var result = zeros(q.Shape, ScalarType.Float32, rest.device);
        var restTokens = Complement(q.ProtectedTokens, q.Shape[2]);
        result.scatter_(2, Expand(restTokens, q.Shape), rest);
        result.scatter_(2, Expand(q.ProtectedTokens, q.Shape), ProtectedQuantizer!.Dequantize(q.Protected!));
        return result.MoveToOuterDisposeScope();
    }

    private static Tensor Gather(Tensor x, Tensor tokens) => x.gather(2, Expand(tokens, x.shape));

    private static Tensor Expand(Tensor tokens, long[] shape)
        => tokens.reshape(shape[0], 1, tokens.shape[1], 1).expand(shape[0], shape[1], tokens.shape[1], shape[3]);

    /// <summary>Ascending positions [B, N - k] not in <paramref name="tokens"/> [B, k].</summary>
    private static Tensor Complement(Tensor tokens, long n)
    {
        var mask = ones(tokens.shape[0], n, ScalarType.Bool, tokens.device);
        mask.scatter_(1, tokens, zeros(tokens.shape, ScalarType.Bool, tokens.device));
        return mask.nonzero().select(1, 1).reshape(tokens.shape[0], n - tokens.shape[1]);
    }
}
