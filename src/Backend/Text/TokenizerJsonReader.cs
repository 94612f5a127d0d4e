using System.Text;
using System.Text.Json;

namespace VidKV.AI.Backend.Text;

/// <summary>
/// Reads the parts of a Hugging Face <c>tokenizer.json</c> that a byte-level BPE needs, and rejects every other shape
/// with a message that says what was found and what is supported.
/// </summary>
internal static class TokenizerJsonReader
{
    private const string Supported =
        "supported is a byte-level BPE (model.type \"BPE\"; pre_tokenizer Sequence[Split(Regex, Isolated), " +
        "ByteLevel(use_regex=false)] as in Qwen2, or ByteLevel(use_regex=true) as in GPT-2; decoder ByteLevel)";

    /// <summary>Reads a parsed tokenizer.json.</summary>
    /// <exception cref="NotSupportedException">The tokenizer is not a byte-level BPE of a supported shape.</exception>
    /// <exception cref="InvalidDataException">A required entry is missing or has the wrong JSON type.</exception>
    public static TokenizerDefinition Read(JsonElement root, string path)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, $"the root must be a JSON object, found {root.ValueKind}");
        }

        if (!root.TryGetProperty("model", out JsonElement model) || model.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, "'model' is missing or not an object");
        }

        string modelType = OptionalString(model, "type", path, "model.type")
            ?? throw Invalid(path, "'model.type' is missing");
        if (modelType != "BPE")
        {
            throw NotSupported(path, $"model.type is \"{modelType}\"");
        }

        string? splitPattern = ReadPreTokenizer(root, path);
        CheckDecoder(root, path);
        NormalizationForm[] normalization = ReadNormalizer(root, path);
        CheckModelOptions(model, path);

        return new TokenizerDefinition(
            ReadVocabulary(model, path),
            ReadMerges(model, path),
            ReadAddedTokens(root, path),
            splitPattern,
            normalization,
            OptionalString(model, "unk_token", path, "model.unk_token"));
    }

    // Returns the Split regex, or null for GPT-2's regex (a lone ByteLevel with use_regex=true).
    private static string? ReadPreTokenizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("pre_tokenizer", out JsonElement pre) || pre.ValueKind == JsonValueKind.Null)
        {
            throw NotSupported(path, "it has no pre_tokenizer, so it is not byte-level");
        }

        string type = TypeOf(pre, path, "pre_tokenizer");
        List<JsonElement> steps = type == "Sequence"
            ? [.. RequireArray(pre, "pretokenizers", path, "pre_tokenizer.pretokenizers").EnumerateArray()]
            : [pre];
        string[] types = [.. steps.Select((step, i) => TypeOf(step, path, $"pre_tokenizer step {i}"))];
        string found = $"pre_tokenizer is {type}" + (type == "Sequence" ? $"[{string.Join(", ", types)}]" : string.Empty);

        if (types.Length == 0 || types[^1] != "ByteLevel" || types.Take(types.Length - 1).Any(t => t != "Split") || types.Length > 2)
        {
            throw NotSupported(path, found);
        }

        JsonElement byteLevel = steps[^1];
        if (OptionalBool(byteLevel, "add_prefix_space", path) == true)
        {
            throw NotSupported(path, $"{found} with add_prefix_space=true");
        }

        bool useRegex = OptionalBool(byteLevel, "use_regex", path) ?? true;
        if (types.Length == 1)
        {
            // Without a regex the whole text is one word, as Hugging Face does.
            return useRegex ? null : @"[\s\S]+";
        }

        if (useRegex)
        {
            throw NotSupported(path, $"{found} with ByteLevel use_regex=true after a Split");
        }

        return ReadSplitPattern(steps[0], path, found);
    }

    private static string ReadSplitPattern(JsonElement split, string path, string found)
    {
        string behavior = OptionalString(split, "behavior", path, "Split.behavior") ?? "Isolated";
        if (behavior != "Isolated" || OptionalBool(split, "invert", path) == true)
        {
            throw NotSupported(path, $"{found} with Split behavior {behavior}, invert {OptionalBool(split, "invert", path) ?? false}");
        }

        if (!split.TryGetProperty("pattern", out JsonElement pattern) || pattern.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, "Split.pattern is missing or not an object");
        }

        if (OptionalString(pattern, "Regex", path, "Split.pattern.Regex") is { } regex)
        {
            return regex;
        }

        if (OptionalString(pattern, "String", path, "Split.pattern.String") is { } literal)
        {
            return System.Text.RegularExpressions.Regex.Escape(literal);
        }

        throw Invalid(path, "Split.pattern has neither 'Regex' nor 'String'");
    }

    private static void CheckDecoder(JsonElement root, string path)
    {
        string found = root.TryGetProperty("decoder", out JsonElement decoder) && decoder.ValueKind != JsonValueKind.Null
            ? TypeOf(decoder, path, "decoder")
            : "null";
        if (found != "ByteLevel")
        {
            throw NotSupported(path, $"decoder is {found}");
        }
    }

    private static NormalizationForm[] ReadNormalizer(JsonElement root, string path)
    {
        if (!root.TryGetProperty("normalizer", out JsonElement normalizer) || normalizer.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        string type = TypeOf(normalizer, path, "normalizer");
        IEnumerable<JsonElement> steps = type == "Sequence"
            ? RequireArray(normalizer, "normalizers", path, "normalizer.normalizers").EnumerateArray()
            : [normalizer];
        var forms = new List<NormalizationForm>();
        foreach (JsonElement step in steps)
        {
            string stepType = TypeOf(step, path, "normalizer step");
            forms.Add(stepType switch
            {
                "NFC" => NormalizationForm.FormC,
                "NFD" => NormalizationForm.FormD,
                "NFKC" => NormalizationForm.FormKC,
                "NFKD" => NormalizationForm.FormKD,
                _ => throw new NotSupportedException(
                    $"Tokenizer '{path}' has a {stepType} normalizer; supported are NFC, NFD, NFKC, NFKD, a Sequence of them, or none."),
            });
        }

        return [.. forms];
    }

    private static void CheckModelOptions(JsonElement model, string path)
    {
        if (OptionalBool(model, "ignore_merges", path) == true)
        {
            throw NotSupported(path, "model.ignore_merges is true");
        }

        if (model.TryGetProperty("dropout", out JsonElement dropout) && dropout.ValueKind == JsonValueKind.Number && dropout.GetDouble() > 0)
        {
            throw NotSupported(path, $"model.dropout is {dropout.GetRawText()}");
        }

        foreach (string name in new[] { "continuing_subword_prefix", "end_of_word_suffix" })
        {
            if (!string.IsNullOrEmpty(OptionalString(model, name, path, $"model.{name}")))
            {
                throw NotSupported(path, $"model.{name} is set");
            }
        }
    }

    private static Dictionary<string, int> ReadVocabulary(JsonElement model, string path)
    {
        if (!model.TryGetProperty("vocab", out JsonElement vocab) || vocab.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, "'model.vocab' is missing or not an object");
        }

        var result = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty entry in vocab.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out int id) || id < 0)
            {
                throw Invalid(path, $"model.vocab entry '{entry.Name}' is {entry.Value.GetRawText()}, not a non-negative integer id");
            }

            result[entry.Name] = id;
        }

        if (result.Count == 0)
        {
            throw Invalid(path, "'model.vocab' is empty");
        }

        return result;
    }

    // Merges are "a b" strings (tokenizers before 0.20) or ["a", "b"] pairs (0.20 and later).
    private static List<string> ReadMerges(JsonElement model, string path)
    {
        if (!model.TryGetProperty("merges", out JsonElement merges) || merges.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (merges.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(path, $"'model.merges' must be an array, found {merges.ValueKind}");
        }

        var result = new List<string>(merges.GetArrayLength());
        int index = 0;
        foreach (JsonElement merge in merges.EnumerateArray())
        {
            if (merge.ValueKind == JsonValueKind.String)
            {
                string text = merge.GetString()!;
                int space = text.IndexOf(' ', StringComparison.Ordinal);
                if (space <= 0 || space == text.Length - 1 || text.IndexOf(' ', space + 1) >= 0)
                {
                    throw Invalid(path, $"model.merges[{index}] \"{text}\" is not two tokens separated by one space");
                }

                result.Add(text);
            }
            else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
            {
                string left = merge[0].GetString()!;
                string right = merge[1].GetString()!;
                if (left.Length == 0 || right.Length == 0)
                {
                    throw Invalid(path, $"model.merges[{index}] has an empty token");
                }

                if (left.Contains(' ', StringComparison.Ordinal) || right.Contains(' ', StringComparison.Ordinal))
                {
                    // Byte-level tokens never hold a space (it is written 'Ġ'); Microsoft.ML.Tokenizers cannot take one.
                    throw NotSupported(path, $"model.merges[{index}] [\"{left}\", \"{right}\"] contains a space");
                }

                result.Add(string.Concat(left, " ", right));
            }
            else
            {
                throw Invalid(path, $"model.merges[{index}] is {merge.GetRawText()}, not \"a b\" or [\"a\", \"b\"]");
            }

            index++;
        }

        return result;
    }

    private static List<AddedToken> ReadAddedTokens(JsonElement root, string path)
    {
        if (!root.TryGetProperty("added_tokens", out JsonElement added) || added.ValueKind == JsonValueKind.Null)
        {
            return [];
        }

        if (added.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(path, $"'added_tokens' must be an array, found {added.ValueKind}");
        }

        var result = new List<AddedToken>();
        foreach (JsonElement token in added.EnumerateArray())
        {
            if (token.ValueKind != JsonValueKind.Object
                || !token.TryGetProperty("id", out JsonElement id) || id.ValueKind != JsonValueKind.Number || !id.TryGetInt32(out int tokenId) || tokenId < 0
                || !token.TryGetProperty("content", out JsonElement content) || content.ValueKind != JsonValueKind.String)
            {
                throw Invalid(path, $"added_tokens entry {token.GetRawText()} lacks an integer 'id' or a string 'content'");
            }

            result.Add(new AddedToken(tokenId, content.GetString()!, OptionalBool(token, "special", path) ?? false));
        }

        return result;
    }

    private static string TypeOf(JsonElement element, string path, string what)
    {
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw Invalid(path, $"{what} must be an object, found {element.ValueKind}");
        }

        return OptionalString(element, "type", path, $"{what}.type") ?? throw Invalid(path, $"{what} has no 'type'");
    }

    private static JsonElement RequireArray(JsonElement element, string name, string path, string what)
    {
        if (!element.TryGetProperty(name, out JsonElement value) || value.ValueKind != JsonValueKind.Array)
        {
            throw Invalid(path, $"'{what}' is missing or not an array");
        }

        return value;
    }

    private static string? OptionalString(JsonElement element, string name, string path, string what)
    {
        if (!element.TryGetProperty(name, out JsonElement value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()
            : throw Invalid(path, $"'{what}' must be a string, found {value.ValueKind}");
    }

    private static bool? OptionalBool(JsonElement element, string name, string path) =>
        !element.TryGetProperty(name, out JsonElement value) ? null : value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            JsonValueKind.Null => null,
            _ => throw Invalid(path, $"'{name}' must be true or false, found {value.GetRawText()}"),
        };

    private static InvalidDataException Invalid(string path, string problem) =>
        new($"Tokenizer file '{path}' is malformed: {problem}.");

    private static NotSupportedException NotSupported(string path, string found) =>
        new($"Tokenizer '{path}' is not supported: {found}; {Supported}.");
}
