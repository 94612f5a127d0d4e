using System.Collections.Frozen;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Tokenizers;

namespace VidKV.AI.Backend.Text;

/// <summary>
/// The byte-level BPE tokenizer of Qwen2 (and so of LLaVA-OneVision), loaded from a Hugging Face
/// <c>tokenizer.json</c> and run by Microsoft.ML.Tokenizers.
/// </summary>
/// <remarks>
/// <para>
/// Supported: <c>model.type</c> "BPE" with a ByteLevel pre-tokenizer, either
/// <c>Sequence[Split(Regex, Isolated), ByteLevel(use_regex=false)]</c> (Qwen2) or a lone
/// <c>ByteLevel(use_regex=true)</c> (GPT-2); a Unicode normalizer (NFC, NFD, NFKC, NFKD, or none); a ByteLevel
/// decoder; merges written as "a b" strings or ["a", "b"] pairs. Every entry of <c>added_tokens</c> is matched in
/// the text before normalization and BPE (leftmost, longest first), as Hugging Face does; their
/// <c>lstrip</c>, <c>rstrip</c> and <c>single_word</c> flags are not honored (Qwen2 sets none of them).
/// </para>
/// <para>
/// One known divergence from Hugging Face, outside Qwen2's usual text: the Split regex runs on UTF-16, so a letter
/// or digit outside the Basic Multilingual Plane (CJK Extension B, for instance) counts as a symbol for
/// <c>\p{L}</c> and <c>\p{N}</c>, which can change how such a character groups with its neighbours.
/// </para>
/// <para>An instance is immutable after loading; <see cref="Encode"/> and <see cref="Decode"/> may be called from
/// several threads at once.</para>
/// </remarks>
public sealed class Qwen2Tokenizer
{
    /// <summary>The pre-tokenizer regex of GPT-2, used by a lone ByteLevel pre-tokenizer with use_regex=true.</summary>
    private const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    private readonly BpeTokenizer _bpe;
    private readonly Regex? _addedTokenPattern;
    private readonly FrozenDictionary<string, int> _tokenToId;
    private readonly FrozenDictionary<string, int> _addedTokens;
    private readonly FrozenDictionary<int, string> _idToToken;

    private Qwen2Tokenizer(
        BpeTokenizer bpe,
        IReadOnlyDictionary<string, int> vocabulary,
        IReadOnlyList<AddedToken> addedTokens,
        SpecialTokenNames names)
    {
        _bpe = bpe;

        var tokenToId = new Dictionary<string, int>(vocabulary, StringComparer.Ordinal);
        var idToToken = new Dictionary<int, string>(vocabulary.Count + addedTokens.Count);
        foreach (KeyValuePair<string, int> entry in vocabulary)
        {
            idToToken[entry.Value] = entry.Key;
        }

        var added = new Dictionary<string, int>(StringComparer.Ordinal);
        var special = new HashSet<int>();
        foreach (AddedToken token in addedTokens)
        {
            // An added token overrides a vocabulary entry of the same id or content, as in Hugging Face.
            tokenToId[token.Content] = token.Id;
            idToToken[token.Id] = token.Content;
            added[token.Content] = token.Id;
            if (token.Special)
            {
                special.Add(token.Id);
            }
        }

        _tokenToId = tokenToId.ToFrozenDictionary(StringComparer.Ordinal);
        _idToToken = idToToken.ToFrozenDictionary();
        _addedTokens = added.ToFrozenDictionary(StringComparer.Ordinal);
        SpecialTokenIds = special.ToFrozenSet();

        // Longest first, so that at any position the alternation picks the longest added token (leftmost-longest).
        string[] alternatives = added.Keys
            .Where(content => content.Length > 0)
            .OrderByDescending(content => content.Length)
            .ThenBy(content => content, StringComparer.Ordinal)
            .Select(Regex.Escape)
            .ToArray();
        _addedTokenPattern = alternatives.Length == 0
            ? null
            : new Regex(string.Join('|', alternatives), RegexOptions.CultureInvariant | RegexOptions.Compiled);

        EosTokenId = names.Eos is null ? null : TokenToId(names.Eos);
        PadTokenId = names.Pad is null ? null : TokenToId(names.Pad);
        BosTokenId = names.Bos is null ? null : TokenToId(names.Bos);
    }

    /// <summary>Gets the number of distinct token ids: the BPE vocabulary plus the added tokens.</summary>
    public int VocabularySize => _idToToken.Count;

    /// <summary>
    /// Gets the id of the end-of-sequence token named by <c>tokenizer_config.json</c> (<c>&lt;|im_end|&gt;</c> for
    /// LLaVA-OneVision), or <see langword="null"/> when the file is absent, names none, or names a token that is
    /// not in the vocabulary.
    /// </summary>
    public int? EosTokenId { get; }

    /// <summary>Gets the id of the padding token named by <c>tokenizer_config.json</c>, or <see langword="null"/>.</summary>
    public int? PadTokenId { get; }

    /// <summary>
    /// Gets the id of the beginning-of-sequence token named by <c>tokenizer_config.json</c>, or
    /// <see langword="null"/> (Qwen2 has none).
    /// </summary>
    public int? BosTokenId { get; }

    /// <summary>Gets the ids of the added tokens flagged <c>special</c>, which <see cref="Decode"/> can skip.</summary>
    public IReadOnlySet<int> SpecialTokenIds { get; }

    /// <summary>
    /// Loads a tokenizer from a checkpoint folder: its <c>tokenizer.json</c>, and its <c>tokenizer_config.json</c>
    /// when present.
    /// </summary>
    /// <param name="checkpointDir">The folder that holds <c>tokenizer.json</c>.</param>
    /// <returns>The loaded tokenizer.</returns>
    /// <exception cref="ArgumentException"><paramref name="checkpointDir"/> is null, empty or white space.</exception>
    /// <exception cref="DirectoryNotFoundException">The folder does not exist.</exception>
    /// <exception cref="FileNotFoundException">The folder has no <c>tokenizer.json</c>.</exception>
    /// <exception cref="NotSupportedException">The tokenizer is not a byte-level BPE of a supported shape.</exception>
    /// <exception cref="InvalidDataException">A file is not valid JSON or lacks a required entry.</exception>
    public static Qwen2Tokenizer FromDirectory(string checkpointDir)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(checkpointDir);
        if (!Directory.Exists(checkpointDir))
        {
            throw new DirectoryNotFoundException($"Checkpoint folder '{Path.GetFullPath(checkpointDir)}' does not exist.");
        }

        return FromFile(Path.Combine(checkpointDir, "tokenizer.json"));
    }

    /// <summary>
    /// Loads a tokenizer from a Hugging Face <c>tokenizer.json</c>, and from the <c>tokenizer_config.json</c> next to
    /// it when present (for the end-of-sequence, padding and beginning-of-sequence tokens).
    /// </summary>
    /// <param name="tokenizerJsonPath">The path of <c>tokenizer.json</c>.</param>
    /// <returns>The loaded tokenizer.</returns>
    /// <exception cref="ArgumentException"><paramref name="tokenizerJsonPath"/> is null, empty or white space.</exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    /// <exception cref="NotSupportedException">The tokenizer is not a byte-level BPE of a supported shape.</exception>
    /// <exception cref="InvalidDataException">A file is not valid JSON or lacks a required entry.</exception>
    public static Qwen2Tokenizer FromFile(string tokenizerJsonPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(tokenizerJsonPath);
        string path = Path.GetFullPath(tokenizerJsonPath);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"Tokenizer file '{path}' does not exist.", path);
        }

        using JsonDocument document = ParseJson(path);
        TokenizerDefinition definition = TokenizerJsonReader.Read(document.RootElement, path);

        string configPath = Path.Combine(Path.GetDirectoryName(path)!, "tokenizer_config.json");
        SpecialTokenNames names = File.Exists(configPath) ? ReadSpecialTokenNames(configPath) : default;

        Dictionary<string, int> specialTokens = definition.AddedTokens.ToDictionary(t => t.Content, t => t.Id, StringComparer.Ordinal);
        var options = new BpeOptions(definition.Vocabulary)
        {
            Merges = definition.Merges,
            SpecialTokens = specialTokens,
            ByteLevel = true,
            PreTokenizer = new RegexPreTokenizer(
                new Regex(definition.SplitPattern ?? Gpt2Pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled),
                specialTokens),
            Normalizer = definition.Normalization.Length == 0 ? null : new UnicodeNormalizer(definition.Normalization),
            UnknownToken = definition.UnknownToken,
        };

        BpeTokenizer bpe;
        try
        {
            bpe = BpeTokenizer.Create(options);
        }
        catch (InvalidOperationException ex)
        {
            throw new InvalidDataException($"'{path}' could not be loaded as a BPE tokenizer: {ex.Message}", ex);
        }

        return new Qwen2Tokenizer(bpe, definition.Vocabulary, definition.AddedTokens, names);
    }

    /// <summary>
    /// Encodes text to token ids, as Hugging Face's <c>encode(text, add_special_tokens=False)</c> does: added tokens
    /// written in the text (<c>&lt;|im_start|&gt;</c>, <c>&lt;video&gt;</c>, ...) become their single ids, the rest is
    /// normalized, split by the pre-tokenizer regex and byte-level BPE encoded. Nothing is prepended or appended.
    /// </summary>
    /// <param name="text">The text to encode.</param>
    /// <returns>The token ids; empty for empty text.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    public IReadOnlyList<int> Encode(string text)
    {
        ArgumentNullException.ThrowIfNull(text);

        // A lone surrogate cannot be normalized or written as UTF-8; it becomes U+FFFD like any invalid text.
        if (text.AsSpan().IndexOfAnyInRange('\uD800', '\uDFFF') >= 0)
        {
            text = Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text));
        }

        var ids = new List<int>();
        int position = 0;
        if (_addedTokenPattern is not null)
        {
            foreach (ValueMatch match in _addedTokenPattern.EnumerateMatches(text))
            {
                EncodeOrdinaryText(text, position, match.Index - position, ids);
                ids.Add(_addedTokens[text.Substring(match.Index, match.Length)]);
                position = match.Index + match.Length;
            }
        }

        EncodeOrdinaryText(text, position, text.Length - position, ids);
        return ids;
    }

    /// <summary>
    /// Decodes token ids to text, as Hugging Face's <c>decode</c> does (ByteLevel decoder, invalid UTF-8 replaced by
    /// U+FFFD). Ids that are not in the vocabulary are skipped.
    /// </summary>
    /// <param name="ids">The token ids.</param>
    /// <param name="skipSpecialTokens">Whether to leave out the tokens in <see cref="SpecialTokenIds"/>.</param>
    /// <returns>The decoded text.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="ids"/> is null.</exception>
    public string Decode(IEnumerable<int> ids, bool skipSpecialTokens = false)
    {
        ArgumentNullException.ThrowIfNull(ids);

        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            AppendTokenBytes(id, skipSpecialTokens, bytes);
        }

        return Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(bytes));
    }

    /// <summary>
    /// Creates a decoder for text generated one token at a time, which holds back incomplete UTF-8 sequences.
    /// </summary>
    /// <param name="skipSpecialTokens">Whether to leave out the tokens in <see cref="SpecialTokenIds"/>.</param>
    /// <returns>A new decoder with nothing pending.</returns>
    internal StreamingDecoder CreateStreamingDecoder(bool skipSpecialTokens = false) => new(this, skipSpecialTokens);

    /// <summary>Gets the id of a token written as in the vocabulary (byte-level form, e.g. "Ġthe") or an added token.</summary>
    /// <param name="token">The token.</param>
    /// <returns>The id, or <see langword="null"/> when the token is unknown.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="token"/> is null.</exception>
    public int? TokenToId(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        return _tokenToId.TryGetValue(token, out int id) ? id : null;
    }

    /// <summary>Gets the token of an id, in the vocabulary's byte-level form (e.g. "Ġthe") or as an added token.</summary>
    /// <param name="id">The token id.</param>
    /// <returns>The token, or <see langword="null"/> when the id is unknown.</returns>
    public string? IdToToken(int id) => _idToToken.TryGetValue(id, out string? token) ? token : null;

    /// <summary>Appends the bytes of one token; unknown ids, and special ids when skipped, add nothing.</summary>
    internal void AppendTokenBytes(int id, bool skipSpecialTokens, List<byte> destination)
    {
        if (skipSpecialTokens && SpecialTokenIds.Contains(id))
        {
            return;
        }

        if (_idToToken.TryGetValue(id, out string? token))
        {
            ByteLevelAlphabet.AppendTokenBytes(token, destination);
        }
    }

    private void EncodeOrdinaryText(string text, int start, int length, List<int> ids)
    {
        if (length > 0)
        {
            ids.AddRange(_bpe.EncodeToIds(text.Substring(start, length)));
        }
    }

    private static JsonDocument ParseJson(string path)
    {
        try
        {
            using FileStream stream = File.OpenRead(path);
            return JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        }
        catch (JsonException ex)
        {
            throw new InvalidDataException($"'{path}' is not valid JSON: {ex.Message}", ex);
        }
    }

    private static SpecialTokenNames ReadSpecialTokenNames(string configPath)
    {
        using JsonDocument document = ParseJson(configPath);
        JsonElement root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"'{configPath}' must hold a JSON object, found {root.ValueKind}.");
        }

        return new SpecialTokenNames(
            ReadTokenName(root, "eos_token", configPath),
            ReadTokenName(root, "pad_token", configPath),
            ReadTokenName(root, "bos_token", configPath));
    }

    // transformers writes a special token as a string, or as an AddedToken object {"content": ...}, or null.
    private static string? ReadTokenName(JsonElement config, string name, string configPath)
    {
        if (!config.TryGetProperty(name, out JsonElement value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.Null => null,
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Object when value.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String
                => content.GetString(),
            _ => throw new InvalidDataException(
                $"'{configPath}': '{name}' must be a string, an object with a string 'content', or null; found {value.ValueKind}."),
        };
    }

    /// <summary>The token names of tokenizer_config.json.</summary>
    private readonly record struct SpecialTokenNames(string? Eos, string? Pad, string? Bos);
}
