using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace VidKV.AI.Server;

/// <summary>
/// Typed reads of request fields. A field that is absent or <c>null</c> reads as <see langword="null"/>; a field of the
/// wrong JSON type is a 400 naming the field as the client spelled it (OpenAI's wording and <c>invalid_type</c> code).
/// </summary>
internal static class JsonFields
{
    /// <summary>A string field.</summary>
    public static string? Str(JsonObject o, string name, string path) => o[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.String => v.GetValue<string>(),
        var other => throw WrongType(path, "a string", other),
    };

    /// <summary>A boolean field.</summary>
    public static bool? Bool(JsonObject o, string name, string path) => o[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() is JsonValueKind.True or JsonValueKind.False => v.GetValue<bool>(),
        var other => throw WrongType(path, "a boolean", other),
    };

    /// <summary>A number field (finite).</summary>
    public static double? Num(JsonObject o, string name, string path) => o[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && double.IsFinite(d) => d,
        var other => throw WrongType(path, "a decimal", other),
    };

    /// <summary>An integer field.</summary>
    public static long? Int(JsonObject o, string name, string path) => o[name] switch
    {
        null => null,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out long l) => l,
        JsonValue v when v.GetValueKind() == JsonValueKind.Number && v.TryGetValue(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e15 => (long)d,
        var other => throw WrongType(path, "an integer", other),
    };

    /// <summary>An object field.</summary>
    public static JsonObject? Obj(JsonObject o, string name, string path) => o[name] switch
    {
        null => null,
        JsonObject obj => obj,
        var other => throw WrongType(path, "an object", other),
    };

    /// <summary>An array field.</summary>
    public static JsonArray? Arr(JsonObject o, string name, string path) => o[name] switch
    {
        null => null,
        JsonArray a => a,
        var other => throw WrongType(path, "an array", other),
    };

    /// <summary>A number within [<paramref name="min"/>, <paramref name="max"/>], as OpenAI words a value out of range.</summary>
    public static double? NumIn(JsonObject o, string name, double min, double max, string? path = null)
    {
        path ??= name;
        double? value = Num(o, name, path);
        if (value is { } v && (v < min || v > max))
        {
            throw OutOfRange(path, "decimal", v, min, max);
        }

        return value;
    }

    /// <summary>An integer within [<paramref name="min"/>, <paramref name="max"/>].</summary>
    public static long? IntIn(JsonObject o, string name, long min, long max, string? path = null)
    {
        path ??= name;
        long? value = Int(o, name, path);
        if (value is { } v && (v < min || v > max))
        {
            throw OutOfRange(path, "integer", v, min, max);
        }

        return value;
    }

    /// <summary>The error for a value of the wrong JSON type.</summary>
    public static ApiError WrongType(string path, string expected, JsonNode? got) =>
        ApiError.Invalid($"Invalid type for '{path}': expected {expected}, but got {Describe(got)} instead.", path, "invalid_type");

    private static ApiError OutOfRange(string path, string kind, double value, double min, double max)
    {
        bool below = value < min;
        string bound = (below ? min : max).ToString(CultureInfo.InvariantCulture);
        return ApiError.Invalid(
            $"Invalid '{path}': {kind} {(below ? "below minimum" : "above maximum")} value. Expected a value {(below ? ">=" : "<=")} {bound}, but got {value.ToString(CultureInfo.InvariantCulture)} instead.",
            path,
            $"{kind}_{(below ? "below_min" : "above_max")}_value");
    }

    private static string Describe(JsonNode? node) => node switch
    {
        null => "null",
        JsonObject => "an object",
        JsonArray => "an array",
        JsonValue v => v.GetValueKind() switch
        {
            JsonValueKind.String => "a string",
            JsonValueKind.Number => "a number",
            JsonValueKind.True or JsonValueKind.False => "a boolean",
            _ => "null",
        },
        _ => "a value",
    };
}
