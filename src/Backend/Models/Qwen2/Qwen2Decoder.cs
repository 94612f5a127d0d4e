using TorchSharp;
using TorchSharp.Modules;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization.Cache;
using VidKV.AI.Quantization;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Models.Qwen2;

/// <summary>Rotary position embedding tables (Qwen2's default RoPE) for given positions.</summary>
internal static class Rope
{
    /// <summary>cos and sin [T, headDim] in float32 for positions [T].</summary>
    public static (Tensor Cos, Tensor Sin) Tables(Tensor positions, int headDim, double theta)
    {
        using var scope = NewDisposeScope();
        var inverse = Enumerable.Range(0, headDim / 2).Select(i => (float)(1.0 / Math.Pow(theta, 2.0 * i / headDim))).ToArray();
        var invFreq = tensor(inverse, device: positions.device);
        var freqs = positions.to(ScalarType.Float32).unsqueeze(1) * invFreq.unsqueeze(0); // [T, hd/2]
        var emb = cat(new[] { freqs, freqs }, -1);                                          // [T, hd]
        return (emb.cos().MoveToOuterDisposeScope(), emb.sin().MoveToOuterDisposeScope());
    }

    /// <summary>x·cos + rotate_half(x)·sin for x [B, H, T, hd], computed in float32.</summary>
    public static Tensor Apply(Tensor x, Tensor cos, Tensor sin)
    {
        using var scope = NewDisposeScope();
        var xf = x.to(ScalarType.Float32);
        long half = x.shape[^1] / 2;
        var rotated = cat(new[] { -xf.narrow(-1, half, half), xf.narrow(-1, 0, half) }, -1);
        return Scalars.Add(xf * cos, rotated * sin).to(x.dtype).MoveToOuterDisposeScope();
    }
}

/// <summary>
/// Replaces a layer's keys and values [B, H_kv, T, hd] before attention without a cache (for training: e.g. their round
/// trip through a quantized cache). Gets the layer's index.
/// </summary>
internal delegate (Tensor Keys, Tensor Values) KeyValueTransform(int layer, Tensor keys, Tensor values);

/// <summary>Grouped-query self-attention with q/k/v biases whose keys and values live in a <see cref="QuantizedKVCache"/>.</summary>
internal sealed class Qwen2Attention : nn.Module
{
    private readonly LinearLayer q_proj;
    private readonly LinearLayer k_proj;
    private readonly LinearLayer v_proj;
    private readonly LinearLayer o_proj;
    private readonly int _heads, _kvHeads, _headDim;

    public Qwen2Attention(Qwen2Config c, ScalarType dtype, Device device)
        : base(nameof(Qwen2Attention))
    {
        (_heads, _kvHeads, _headDim) = (c.NumHeads, c.NumKeyValueHeads, c.HeadDim);
        q_proj = new LinearLayer(c.HiddenSize, c.NumHeads * c.HeadDim, true, dtype, device);
        k_proj = new LinearLayer(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, true, dtype, device);
        v_proj = new LinearLayer(c.HiddenSize, c.NumKeyValueHeads * c.HeadDim, true, dtype, device);
        o_proj = new LinearLayer(c.NumHeads * c.HeadDim, c.HiddenSize, false, dtype, device);
        register_module(nameof(q_proj), q_proj);
        register_module(nameof(k_proj), k_proj);
        register_module(nameof(v_proj), v_proj);
        register_module(nameof(o_proj), o_proj);
    }

    /// <summary>
    /// x [B, T, D] at consecutive positions. Without a cache: causal attention over x alone. With an empty cache:
    /// the same (prefill attention uses the unquantized keys and values), then the cache is filled. Otherwise the new
    /// keys and values are appended and the queries attend over the whole cache.
    /// </summary>
    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, QuantizedKVCache? cache, Tensor? importance, int layer = 0, KeyValueTransform? transform = null, Tensor? transformedQueries = null)
    {
        using var scope = NewDisposeScope();
        long b = x.shape[0], t = x.shape[1];
        var q = Rope.Apply(q_proj.forward(x).view(b, t, _heads, _headDim).transpose(1, 2), cos, sin);     // [B, H, T, hd]
        var k = Rope.Apply(k_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2), cos, sin);   // [B, Hkv, T, hd]
        var v = v_proj.forward(x).view(b, t, _kvHeads, _headDim).transpose(1, 2);                        // [B, Hkv, T, hd]

        int groups = _heads / _kvHeads;
        Tensor Attend(Tensor keys, Tensor values) => nn.functional.scaled_dot_product_attention(
            q, groups > 1 ? keys.repeat_interleave(groups, 1) : keys, groups > 1 ? values.repeat_interleave(groups, 1) : values, null, 0.0, t > 1);

        Tensor output;
        if (transform is not null)
        {
            if (cache is not null)
            {
                throw new ArgumentException("A key/value transform is for attention without a cache.", nameof(transform));
            }

            // Every query reads the transformed keys and values, or only the rows marked in transformedQueries [B, T].
            var (kt, vt) = transform(layer, k, v);
            output = transformedQueries is null
                ? Attend(kt, vt)
                : where(transformedQueries.view(b, 1, t, 1), Attend(kt, vt), Attend(k, v));
        }
        else if (cache is null || cache.Length == 0)
        {
            output = Attend(k, v);
            cache?.Prefill(k, v, importance);
        }
        else
        {
            cache.Append(k, v);
            output = cache.AttendForDecode(q, causal: true).to(x.dtype);
        }

        return o_proj.forward(output.transpose(1, 2).reshape(b, t, _heads * _headDim)).MoveToOuterDisposeScope();
    }
}

/// <summary>SwiGLU MLP: down(silu(gate(x)) * up(x)).</summary>
internal sealed class Qwen2Mlp : nn.Module<Tensor, Tensor>
{
    private readonly LinearLayer gate_proj;
    private readonly LinearLayer up_proj;
    private readonly LinearLayer down_proj;

    public Qwen2Mlp(Qwen2Config c, ScalarType dtype, Device device)
        : base(nameof(Qwen2Mlp))
    {
        gate_proj = new LinearLayer(c.HiddenSize, c.IntermediateSize, false, dtype, device);
        up_proj = new LinearLayer(c.HiddenSize, c.IntermediateSize, false, dtype, device);
        down_proj = new LinearLayer(c.IntermediateSize, c.HiddenSize, false, dtype, device);
        register_module(nameof(gate_proj), gate_proj);
        register_module(nameof(up_proj), up_proj);
        register_module(nameof(down_proj), down_proj);
    }

    public override Tensor forward(Tensor x)
    {
        using var scope = NewDisposeScope();
        return down_proj.forward(nn.functional.silu(gate_proj.forward(x)) * up_proj.forward(x)).MoveToOuterDisposeScope();
    }
}

/// <summary>Pre-norm decoder layer.</summary>
internal sealed class Qwen2DecoderLayer : nn.Module
{
    private readonly RmsNormLayer input_layernorm;
    private readonly Qwen2Attention self_attn;
    private readonly RmsNormLayer post_attention_layernorm;
    private readonly Qwen2Mlp mlp;

    public Qwen2DecoderLayer(Qwen2Config c, ScalarType dtype, Device device)
        : base(nameof(Qwen2DecoderLayer))
    {
        input_layernorm = new RmsNormLayer(c.HiddenSize, c.RmsNormEps, dtype, device);
        self_attn = new Qwen2Attention(c, dtype, device);
        post_attention_layernorm = new RmsNormLayer(c.HiddenSize, c.RmsNormEps, dtype, device);
        mlp = new Qwen2Mlp(c, dtype, device);
        register_module(nameof(input_layernorm), input_layernorm);
        register_module(nameof(self_attn), self_attn);
        register_module(nameof(post_attention_layernorm), post_attention_layernorm);
        register_module(nameof(mlp), mlp);
    }

    public Tensor Forward(Tensor x, Tensor cos, Tensor sin, QuantizedKVCache? cache, Tensor? importance, int layer = 0, KeyValueTransform? transform = null, Tensor? transformedQueries = null)
    {
        using var scope = NewDisposeScope();
        var h = Scalars.Add(x, self_attn.Forward(input_layernorm.forward(x), cos, sin, cache, importance, layer, transform, transformedQueries));
        return Scalars.Add(h, mlp.forward(post_attention_layernorm.forward(h))).MoveToOuterDisposeScope();
    }
}

/// <summary>The Qwen2 decoder stack: embeddings, layers, final norm (the LM head lives with the full model).</summary>
internal sealed class Qwen2Decoder : nn.Module
{
    private readonly EmbeddingLayer embed_tokens;
    private readonly ModuleList<Qwen2DecoderLayer> layers;
    private readonly RmsNormLayer norm;
    private readonly Qwen2Config _config;

    public Qwen2Decoder(Qwen2Config c, ScalarType dtype, Device device)
        : base(nameof(Qwen2Decoder))
    {
        _config = c;
        embed_tokens = new EmbeddingLayer(c.VocabSize, c.HiddenSize, dtype, device);
        layers = new ModuleList<Qwen2DecoderLayer>(Enumerable.Range(0, c.NumLayers).Select(_ => new Qwen2DecoderLayer(c, dtype, device)).ToArray());
        norm = new RmsNormLayer(c.HiddenSize, c.RmsNormEps, dtype, device);
        register_module(nameof(embed_tokens), embed_tokens);
        register_module(nameof(layers), layers);
        register_module(nameof(norm), norm);
    }

    public EmbeddingLayer Embeddings => embed_tokens;

    /// <summary>
    /// Runs the layers over embeddings [B, T, D] at positions start..start+T-1 and returns the final-normed hidden states.
    /// <paramref name="layerOutputs"/>, when given, receives each layer's output; <paramref name="transform"/> (without
    /// caches) replaces each layer's keys and values for the queries marked in <paramref name="transformedQueries"/>
    /// ([B, T] bool; all when null).
    /// </summary>
    public Tensor Forward(Tensor embeds, long start, IReadOnlyList<QuantizedKVCache>? caches, Tensor? importance, List<Tensor>? layerOutputs, KeyValueTransform? transform = null, Tensor? transformedQueries = null)
    {
        using var scope = NewDisposeScope();
        using var first = start.ToScalar();
        using var end = (start + embeds.shape[1]).ToScalar();
        var positions = arange(first, end, Scalars.OneInt64, ScalarType.Int64, embeds.device);
        var (cos, sin) = Rope.Tables(positions, _config.HeadDim, _config.RopeTheta);
        var h = embeds;
        for (int i = 0; i < layers.Count; i++)
        {
            h = layers[i].Forward(h, cos, sin, caches?[i], importance, i, transform, transformedQueries);
            layerOutputs?.Add(h.MoveToOuterDisposeScope());
        }

        return norm.forward(h).MoveToOuterDisposeScope();
    }
}
