using VidKV.AI.Backend;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Bench;

/// <summary>
/// Writes a random-weight checkpoint with LLaVA-OneVision-0.5B's exact geometry (bf16 safetensors, about 1.8 GB) and
/// measures how much resident memory loading it takes, against the size of the weights.
/// </summary>
internal static class LoadBenchmark
{
    private const string Config = """
        {
          "model_type": "llava_onevision",
          "image_token_index": 151646, "video_token_index": 151647,
          "vision_feature_layer": -1, "vision_feature_select_strategy": "full", "vision_aspect_ratio": "anyres_max_9",
          "torch_dtype": "bfloat16", "tie_word_embeddings": true,
          "text_config": { "model_type": "qwen2", "vocab_size": 152000, "hidden_size": 896, "intermediate_size": 4864,
            "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0, "max_position_embeddings": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16" },
          "vision_config": { "model_type": "siglip_vision_model", "hidden_size": 1152, "intermediate_size": 4304,
            "num_hidden_layers": 26, "num_attention_heads": 16, "image_size": 384, "patch_size": 14, "layer_norm_eps": 1e-6 }
        }
        """;

    public static int Run(string commandLine, string dtypeName)
    {
        var dtype = dtypeName switch
        {
            "bfloat16" => ScalarType.BFloat16,
            "float32" => ScalarType.Float32,
            _ => throw new ArgumentException($"load takes bfloat16 or float32; got '{dtypeName}'."),
        };
        string dir = EnsureCheckpoint();
        string weights = Path.Combine(dir, "model.safetensors");
        var shapes = LlavaOnevisionModel.ParameterShapes(LlavaOnevisionConfig.Load(dir), tiedEmbeddings: true);
        long fileBytes = new FileInfo(weights).Length;
        Console.WriteLine($"Command: `{commandLine}`");
        Console.WriteLine($"Checkpoint: LLaVA-OneVision-0.5B geometry, {shapes.Count} tensors, {fileBytes / 1e9:F3} GB bf16 safetensors; {TorchRuntime.Description}");
        Console.WriteLine("| load as | weights held (GB) | resident before (GB) | peak resident during load (GB) | peak increase / weights held | seconds |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|");
        // One type per process: memory freed by an earlier load stays resident in the allocator and would skew the next.
        {
            GC.Collect();
            ResetPeak();
            long before = Resident();
            var clock = Stopwatch.StartNew();
            using (var model = LlavaOnevisionModel.Load(dir, new ModelLoadOptions { DType = dtype }))
            {
                clock.Stop();
                long held = model.named_parameters().Sum(p => p.parameter.NumberOfElements * p.parameter.ElementSize);
                long peak = Peak();
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"| {dtype} | {held / 1e9:F3} | {before / 1e9:F3} | {peak / 1e9:F3} | {(double)(peak - before) / held:F3} | {clock.Elapsed.TotalSeconds:F1} |"));
            }
        }

        return 0;
    }

    /// <summary>The random-weight 0.5B-geometry checkpoint folder (config.json, model.safetensors), written once.</summary>
    public static string EnsureCheckpoint()
    {
        string dir = Path.Combine(Path.GetTempPath(), "vidkv-load-bench");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.json"), Config);
        string weights = Path.Combine(dir, "model.safetensors");
        var config = LlavaOnevisionConfig.Load(dir);
        var shapes = LlavaOnevisionModel.ParameterShapes(config, tiedEmbeddings: true);
        long expected = shapes.Sum(s => s.Shape.Aggregate(1L, (a, b) => a * b) * 2);
        if (!File.Exists(weights) || new FileInfo(weights).Length < expected)
        {
            var clock = Stopwatch.StartNew();
            Write(weights, shapes);
            Console.Error.WriteLine($"wrote {weights} in {clock.Elapsed.TotalSeconds:F1} s");
        }

        return dir;
    }

    private static void Write(string path, IReadOnlyList<(string Name, long[] Shape)> shapes)
    {
        var header = new Dictionary<string, object>();
        long offset = 0;
        foreach (var (name, shape) in shapes)
        {
            long bytes = shape.Aggregate(1L, (a, b) => a * b) * 2;
            header[name] = new { dtype = "BF16", shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }

        var json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header));
        var block = new byte[1 << 24];
        var rng = new Random(0);
        for (int i = 0; i < block.Length; i += 2)
        {
            // bf16 values of magnitude about 0.01, random sign and mantissa.
            block[i] = (byte)rng.Next(256);
            block[i + 1] = (byte)(0x3C | (rng.Next(2) << 7));
        }

        using var stream = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
        stream.Write(BitConverter.GetBytes((long)json.Length));
        stream.Write(json);
        for (long left = offset; left > 0; left -= block.Length)
        {
            stream.Write(block, 0, (int)Math.Min(left, block.Length));
        }
    }

    private static long Resident() => Status("VmRSS:");

    private static long Peak() => Status("VmHWM:");

    // Writing 5 to clear_refs resets the peak resident set size (VmHWM) of this process.
    private static void ResetPeak() => File.WriteAllText("/proc/self/clear_refs", "5");

    private static long Status(string key)
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(key, StringComparison.Ordinal));
        return long.Parse(line[key.Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
    }
}
