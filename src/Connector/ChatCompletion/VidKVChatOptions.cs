using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.AI;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Connector;

/// <summary>
/// Per-request settings of a <see cref="VidKVChatClient"/> carried in <see cref="ChatOptions.AdditionalProperties"/>:
/// the KV cache preset, the frames taken from each video (a count or a rate) and a time range. Typed setters and getters.
/// </summary>
/// <remarks>
/// Values may also arrive as strings or JSON numbers (from configuration, Semantic Kernel execution settings or an HTTP
/// request); the getters accept those and throw <see cref="ArgumentException"/> naming the key for anything else.
/// The setters change the options they are given and return them, for chaining: call them on options you build.
/// </remarks>
public static class VidKVChatOptions
{
    /// <summary>Key of the KV cache preset (string, one of <see cref="KVCacheOptions.PresetNames"/>).</summary>
    public const string CachePresetKey = "vidkv.cache_preset";

    /// <summary>Key of the number of frames sampled uniformly from each video (int, 1 to 1024).</summary>
    public const string FrameCountKey = "vidkv.frame_count";

    /// <summary>Key of the sampling rate in frames per second (double, greater than 0, at most 240).</summary>
    public const string FramesPerSecondKey = "vidkv.fps";

    /// <summary>Key of the start of the sampled range, in seconds (double, at least 0).</summary>
    public const string StartSecondsKey = "vidkv.start_seconds";

    /// <summary>Key of the end of the sampled range, in seconds (double, after the start).</summary>
    public const string EndSecondsKey = "vidkv.end_seconds";

    /// <summary>Sets the KV cache preset of this request.</summary>
    public static ChatOptions WithCachePreset(this ChatOptions options, string preset)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(preset);
        return Set(options, CachePresetKey, preset);
    }

    /// <summary>Sets how many frames are sampled uniformly from each video.</summary>
    public static ChatOptions WithFrameCount(this ChatOptions options, int frameCount)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Set(options, FrameCountKey, frameCount);
    }

    /// <summary>Samples each video at a rate instead of a fixed count.</summary>
    public static ChatOptions WithFramesPerSecond(this ChatOptions options, double framesPerSecond)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Set(options, FramesPerSecondKey, framesPerSecond);
    }

    /// <summary>Samples only between <paramref name="start"/> and <paramref name="end"/> (either may be open).</summary>
    public static ChatOptions WithTimeRange(this ChatOptions options, TimeSpan? start, TimeSpan? end)
    {
        ArgumentNullException.ThrowIfNull(options);
        if (start is { } s)
        {
            Set(options, StartSecondsKey, s.TotalSeconds);
        }

        if (end is { } e)
        {
            Set(options, EndSecondsKey, e.TotalSeconds);
        }

        return options;
    }

    /// <summary>The cache preset asked for, or <see langword="null"/>.</summary>
    /// <exception cref="ArgumentException">The value is not a string.</exception>
    public static string? GetCachePreset(this ChatOptions? options) => Read(options, CachePresetKey, v => v switch
    {
        string s => s,
        JsonElement { ValueKind: JsonValueKind.String } j => j.GetString(),
        _ => null,
    }, "a preset name");

    /// <summary>The frame count asked for, or <see langword="null"/>.</summary>
    /// <exception cref="ArgumentException">The value is not an integer.</exception>
    public static int? GetFrameCount(this ChatOptions? options) => Read<int?>(options, FrameCountKey, v => v switch
    {
        int i => i,
        long l and >= int.MinValue and <= int.MaxValue => (int)l,
        string s when int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) => i,
        JsonElement { ValueKind: JsonValueKind.Number } j when j.TryGetInt32(out int i) => i,
        JsonElement { ValueKind: JsonValueKind.String } j when int.TryParse(j.GetString(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) => i,
        _ => null,
    }, "an integer");

    /// <summary>The sampling rate asked for, or <see langword="null"/>.</summary>
    /// <exception cref="ArgumentException">The value is not a number.</exception>
    public static double? GetFramesPerSecond(this ChatOptions? options) => ReadDouble(options, FramesPerSecondKey);

    /// <summary>The start of the sampled range asked for, or <see langword="null"/>.</summary>
    /// <exception cref="ArgumentException">The value is not a number of seconds.</exception>
    public static TimeSpan? GetStart(this ChatOptions? options) => ReadDouble(options, StartSecondsKey) is { } s ? Seconds(StartSecondsKey, s) : null;

    /// <summary>The end of the sampled range asked for, or <see langword="null"/>.</summary>
    /// <exception cref="ArgumentException">The value is not a number of seconds.</exception>
    public static TimeSpan? GetEnd(this ChatOptions? options) => ReadDouble(options, EndSecondsKey) is { } s ? Seconds(EndSecondsKey, s) : null;

    private static TimeSpan Seconds(string key, double seconds) =>
        double.IsFinite(seconds) && Math.Abs(seconds) < TimeSpan.MaxValue.TotalSeconds
            ? TimeSpan.FromSeconds(seconds)
            : throw new ArgumentException($"ChatOptions.AdditionalProperties[\"{key}\"] is {seconds.ToString(CultureInfo.InvariantCulture)}; allowed: a finite number of seconds.");

    private static double? ReadDouble(ChatOptions? options, string key) => Read<double?>(options, key, v => v switch
    {
        double d => d,
        float f => f,
        int i => i,
        long l => l,
        decimal m => (double)m,
        string s when double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        JsonElement { ValueKind: JsonValueKind.Number } j => j.GetDouble(),
        JsonElement { ValueKind: JsonValueKind.String } j when double.TryParse(j.GetString(), NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => d,
        _ => null,
    }, "a number");

    private static T? Read<T>(ChatOptions? options, string key, Func<object, T?> convert, string allowed)
    {
        if (options?.AdditionalProperties is not { } properties || !properties.TryGetValue(key, out object? value) || value is null)
        {
            return default;
        }

        return convert(value) ?? throw new ArgumentException(
            $"ChatOptions.AdditionalProperties[\"{key}\"] is {value.GetType().Name} '{value}'; allowed: {allowed}.");
    }

    private static ChatOptions Set(ChatOptions options, string key, object value)
    {
        (options.AdditionalProperties ??= new AdditionalPropertiesDictionary())[key] = value;
        return options;
    }
}
