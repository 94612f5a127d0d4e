using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend.Tests.Text;

public sealed class Qwen2TokenizerTests : IDisposable
{
    private static readonly Lazy<Qwen2Tokenizer> SharedTokenizer = new(() => Qwen2Tokenizer.FromDirectory(Fixtures.Model));

    private static readonly Lazy<IReadOnlyList<TokenizerCase>> SharedCases = new(LoadCases);

    private readonly string _tempDir = Path.Combine(Path.GetTempPath(), "vidkv-tokenizer-tests-" + Guid.NewGuid().ToString("N"));

    public Qwen2TokenizerTests() => Directory.CreateDirectory(_tempDir);

    /// <summary>The indexes of tokenizer-cases.json (16 cases made by Hugging Face tokenizers 0.23).</summary>
    public static TheoryData<int> CaseIndexes => [.. Enumerable.Range(0, SharedCases.Value.Count)];

    private static Qwen2Tokenizer Tokenizer => SharedTokenizer.Value;

    private static IReadOnlyList<TokenizerCase> Cases => SharedCases.Value;

    public void Dispose() => Directory.Delete(_tempDir, recursive: true);

    [Fact]
    public void Fixture_HasAllCases()
    {
        Assert.Equal(16, Cases.Count);
        Assert.Contains(Cases, c => c.Text.Length == 0);
        Assert.Contains(Cases, c => c.Text.Contains("日本語", StringComparison.Ordinal));
        Assert.Contains(Cases, c => c.Text.Contains("🙂", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void Encode_FixtureCase_MatchesHuggingFaceIds(int index)
    {
        TokenizerCase c = Cases[index];

        Assert.Equal(c.Ids, Tokenizer.Encode(c.Text));
    }

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void Decode_FixtureCase_MatchesHuggingFaceText(int index)
    {
        TokenizerCase c = Cases[index];

        Assert.Equal(c.Decoded, Tokenizer.Decode(c.Ids));
    }

    [Fact]
    public void Encode_SpecialTokensInText_BecomeSingleIds()
    {
        IReadOnlyList<int> ids = Tokenizer.Encode("<|im_start|>user <video><image><|im_end|><|endoftext|>");

        Assert.Equal(481, ids[0]);
        Assert.Equal([484, 483, 482, 480], ids.Skip(ids.Count - 4));
    }

    [Fact]
    public void Encode_NonNfcText_IsNormalizedFirst()
    {
        // "e" + combining acute accent is NFC-normalized to "é" before BPE, as the normalizer says.
        Assert.Equal(Tokenizer.Encode("café"), Tokenizer.Encode("cafe\u0301"));
    }

    [Fact]
    public void Encode_Null_Throws()
    {
        Assert.Throws<ArgumentNullException>(() => Tokenizer.Encode(null!));
    }

    [Fact]
    public void TokenToId_ReferenceSpecialIds_Match()
    {
        using JsonDocument reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.LlavaTiny, "reference.json")));
        JsonElement specialIds = reference.RootElement.GetProperty("special_ids");
        Assert.Equal(5, specialIds.EnumerateObject().Count());

        foreach (JsonProperty entry in specialIds.EnumerateObject())
        {
            int expected = entry.Value.GetInt32();
            Assert.Equal(expected, Tokenizer.TokenToId(entry.Name));
            Assert.Equal(entry.Name, Tokenizer.IdToToken(expected));
            Assert.Contains(expected, Tokenizer.SpecialTokenIds);
        }

        Assert.Equal(5, Tokenizer.SpecialTokenIds.Count);
    }

    [Fact]
    public void TokenToId_VocabularyTokens_UseByteLevelForm()
    {
        Assert.Equal(260, Tokenizer.TokenToId("Ġthe"));
        Assert.Equal("Ġthe", Tokenizer.IdToToken(260));
        Assert.Equal(220, Tokenizer.TokenToId("Ġ"));
        Assert.Null(Tokenizer.TokenToId("not-a-token"));
        Assert.Null(Tokenizer.IdToToken(485));
        Assert.Null(Tokenizer.IdToToken(-1));
    }

    [Fact]
    public void Properties_FromTokenizerConfig_AreResolved()
    {
        Assert.Equal(485, Tokenizer.VocabularySize);
        Assert.Equal(482, Tokenizer.EosTokenId); // "<|im_end|>"
        Assert.Equal(480, Tokenizer.PadTokenId); // "<|endoftext|>"
        Assert.Null(Tokenizer.BosTokenId);
    }

    [Fact]
    public void FromFile_ConfigWithContentObjects_ResolvesTokens()
    {
        File.Copy(Path.Combine(Fixtures.Model, "tokenizer.json"), Path.Combine(_tempDir, "tokenizer.json"));
        File.WriteAllText(Path.Combine(_tempDir, "tokenizer_config.json"), """
            {
              "eos_token": {"__type": "AddedToken", "content": "<|endoftext|>", "special": true},
              "pad_token": null,
              "bos_token": "<|im_start|>"
            }
            """);

        Qwen2Tokenizer tokenizer = Qwen2Tokenizer.FromFile(Path.Combine(_tempDir, "tokenizer.json"));

        Assert.Equal(480, tokenizer.EosTokenId);
        Assert.Null(tokenizer.PadTokenId);
        Assert.Equal(481, tokenizer.BosTokenId);
    }

    [Fact]
    public void FromFile_WithoutConfig_HasNoEos()
    {
        File.Copy(Path.Combine(Fixtures.Model, "tokenizer.json"), Path.Combine(_tempDir, "tokenizer.json"));

        Qwen2Tokenizer tokenizer = Qwen2Tokenizer.FromFile(Path.Combine(_tempDir, "tokenizer.json"));

        Assert.Null(tokenizer.EosTokenId);
        Assert.Null(tokenizer.PadTokenId);
        Assert.Equal(Cases[1].Ids, tokenizer.Encode(Cases[1].Text));
    }

    [Fact]
    public void Decode_SkipSpecialTokens_LeavesThemOut()
    {
        TokenizerCase chat = Cases.Single(c => c.Text.StartsWith("<|im_start|>user <video>\nWhat is this?", StringComparison.Ordinal));

        string decoded = Tokenizer.Decode(chat.Ids, skipSpecialTokens: true);

        Assert.Equal("user \nWhat is this?assistant\n", decoded);
    }

    [Fact]
    public void Decode_UnknownIds_AreSkipped()
    {
        Assert.Equal("Hello world", Tokenizer.Decode([39, 9999, 367, 78, 220, 86, 386, 75, 67]));
    }

    [Fact]
    public void Decode_TruncatedCharacter_GivesReplacementCharacter()
    {
        // 413 is the first two bytes of "日" (E6 97); "a" cannot continue it.
        Assert.Equal("\uFFFDa", Tokenizer.Decode([413, 64]));
    }

    [Theory]
    [MemberData(nameof(CaseIndexes))]
    public void StreamingDecoder_FixtureCase_ConcatenationEqualsDecoded(int index)
    {
        TokenizerCase c = Cases[index];
        StreamingDecoder decoder = Tokenizer.CreateStreamingDecoder();
        var text = new StringBuilder();

        foreach (int id in c.Ids)
        {
            string piece = decoder.Push(id);
            Assert.DoesNotContain('\uFFFD', piece);
            text.Append(piece);
        }

        Assert.Equal(0, decoder.PendingByteCount);
        text.Append(decoder.Flush());
        Assert.Equal(c.Decoded, text.ToString());
    }

    [Fact]
    public void StreamingDecoder_CharacterSplitOverTokens_IsHeldBackUntilComplete()
    {
        StreamingDecoder decoder = Tokenizer.CreateStreamingDecoder();

        Assert.Equal(string.Empty, decoder.Push(413)); // E6 97: two of the three bytes of "日"
        Assert.Equal(2, decoder.PendingByteCount);
        Assert.Equal("日本", decoder.Push(403)); // A5 E6 9C AC: ends "日", then all of "本"
        Assert.Equal(0, decoder.PendingByteCount);
    }

    [Fact]
    public void StreamingDecoder_EmojiSplitOverThreeTokens_ComesOutWhole()
    {
        StreamingDecoder decoder = Tokenizer.CreateStreamingDecoder();

        // " F0 9F" | "99 82 F0 9F" | "8E AC": 🙂 and 🎬 each straddle two tokens.
        Assert.Equal(" ", decoder.Push(427));
        Assert.Equal("🙂", decoder.Push(441));
        Assert.Equal("🎬", decoder.Push(440));
        Assert.Equal(string.Empty, decoder.Flush());
    }

    [Fact]
    public void StreamingDecoder_IncompleteAtEnd_FlushGivesReplacementCharacter()
    {
        StreamingDecoder decoder = Tokenizer.CreateStreamingDecoder();

        Assert.Equal(string.Empty, decoder.Push(413));
        Assert.Equal("\uFFFD", decoder.Flush());
        Assert.Equal(0, decoder.PendingByteCount);
        Assert.Equal(string.Empty, decoder.Flush());
    }

    [Fact]
    public void StreamingDecoder_InvalidSequence_MatchesDecode()
    {
        int[] ids = [413, 64, 412, 67, 413];
        StreamingDecoder decoder = Tokenizer.CreateStreamingDecoder();

        string streamed = string.Concat(ids.Select(decoder.Push)) + decoder.Flush();

        Assert.Equal(Tokenizer.Decode(ids), streamed);
        Assert.StartsWith("\uFFFDa", streamed, StringComparison.Ordinal);
    }

    [Fact]
    public void StreamingDecoder_SkipSpecialTokens_LeavesThemOut()
    {
        StreamingDecoder decoder = Tokenizer.CreateStreamingDecoder(skipSpecialTokens: true);

        string text = string.Concat(new[] { 481, 39, 367, 78, 482 }.Select(decoder.Push)) + decoder.Flush();

        Assert.Equal("Hello", text);
    }

    [Fact]
    public void FromFile_MergesAsStrings_EncodesLikePairs()
    {
        JsonObject root = LoadTokenizerJson();
        JsonArray merges = root["model"]!["merges"]!.AsArray();
        Assert.IsType<JsonArray>(merges[0]); // the fixture spells merges as pairs
        var strings = new JsonArray([.. merges.Select(m => (JsonNode)JsonValue.Create($"{m![0]} {m[1]}")!)]);
        root["model"]!["merges"] = strings;
        string path = WriteTokenizerJson(root);
        Assert.Equal(JsonValueKind.String, JsonDocument.Parse(File.ReadAllText(path)).RootElement.GetProperty("model").GetProperty("merges")[0].ValueKind);

        Qwen2Tokenizer fromStrings = Qwen2Tokenizer.FromFile(path);

        Assert.Equal(Tokenizer.VocabularySize, fromStrings.VocabularySize);
        foreach (TokenizerCase c in Cases)
        {
            Assert.Equal(Tokenizer.Encode(c.Text), fromStrings.Encode(c.Text));
            Assert.Equal(c.Ids, fromStrings.Encode(c.Text));
        }
    }

    [Fact]
    public void FromFile_WithoutMerges_EncodesDifferently()
    {
        // Guards the test above: the merges matter, so equal encodings mean they were read.
        JsonObject root = LoadTokenizerJson();
        root["model"]!["merges"] = new JsonArray();

        Qwen2Tokenizer noMerges = Qwen2Tokenizer.FromFile(WriteTokenizerJson(root));

        Assert.Equal(Encoding.UTF8.GetByteCount("Hello world"), noMerges.Encode("Hello world").Count);
        Assert.NotEqual(Tokenizer.Encode("Hello world"), noMerges.Encode("Hello world"));
    }

    [Fact]
    public void FromDirectory_ModelAlt_EncodesIdentically()
    {
        Qwen2Tokenizer alt = Qwen2Tokenizer.FromDirectory(Fixtures.ModelAlt);

        foreach (TokenizerCase c in Cases)
        {
            Assert.Equal(c.Ids, alt.Encode(c.Text));
        }
    }

    [Fact]
    public void FromFile_MissingFile_ThrowsFileNotFoundWithPath()
    {
        string path = Path.Combine(_tempDir, "absent", "tokenizer.json");

        FileNotFoundException ex = Assert.Throws<FileNotFoundException>(() => Qwen2Tokenizer.FromFile(path));

        Assert.Equal(path, ex.FileName);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromDirectory_FolderWithoutTokenizer_ThrowsFileNotFoundWithPath()
    {
        FileNotFoundException ex = Assert.Throws<FileNotFoundException>(() => Qwen2Tokenizer.FromDirectory(_tempDir));

        Assert.Contains(Path.Combine(_tempDir, "tokenizer.json"), ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromDirectory_MissingFolder_ThrowsDirectoryNotFoundWithPath()
    {
        string dir = Path.Combine(_tempDir, "absent");

        DirectoryNotFoundException ex = Assert.Throws<DirectoryNotFoundException>(() => Qwen2Tokenizer.FromDirectory(dir));

        Assert.Contains(dir, ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("  ")]
    public void FromFile_BlankPath_ThrowsArgument(string path)
    {
        Assert.Throws<ArgumentException>(() => Qwen2Tokenizer.FromFile(path));
    }

    [Fact]
    public void FromFile_WordPieceModel_ThrowsNotSupported()
    {
        JsonObject root = LoadTokenizerJson();
        root["model"]!["type"] = "WordPiece";
        string path = WriteTokenizerJson(root);

        NotSupportedException ex = Assert.Throws<NotSupportedException>(() => Qwen2Tokenizer.FromFile(path));

        Assert.Contains("\"WordPiece\"", ex.Message, StringComparison.Ordinal);
        Assert.Contains("byte-level BPE", ex.Message, StringComparison.Ordinal);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFile_MetaspaceBpe_ThrowsNotSupported()
    {
        // A SentencePiece-style BPE (Llama 2): BPE, but not byte-level.
        JsonObject root = LoadTokenizerJson();
        root["pre_tokenizer"] = JsonNode.Parse("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""");
        root["decoder"] = JsonNode.Parse("""{"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": false}""");
        string path = WriteTokenizerJson(root);

        NotSupportedException ex = Assert.Throws<NotSupportedException>(() => Qwen2Tokenizer.FromFile(path));

        Assert.Contains("pre_tokenizer is Metaspace", ex.Message, StringComparison.Ordinal);
        Assert.Contains("byte-level BPE", ex.Message, StringComparison.Ordinal);
        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFile_NoPreTokenizer_ThrowsNotSupported()
    {
        JsonObject root = LoadTokenizerJson();
        root["pre_tokenizer"] = null;

        NotSupportedException ex = Assert.Throws<NotSupportedException>(() => Qwen2Tokenizer.FromFile(WriteTokenizerJson(root)));

        Assert.Contains("not byte-level", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFile_GptStyleByteLevel_EncodesWithGpt2Regex()
    {
        // A lone ByteLevel(use_regex=true) pre-tokenizer splits " 1234" as one number run, unlike Qwen2's regex.
        JsonObject root = LoadTokenizerJson();
        root["pre_tokenizer"] = JsonNode.Parse("""{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true}""");

        Qwen2Tokenizer gpt = Qwen2Tokenizer.FromFile(WriteTokenizerJson(root));

        Assert.Equal(Cases[0].Ids, gpt.Encode("Hello world"));
        Assert.Equal("numbers 1234567 and 3.14159", gpt.Decode(gpt.Encode("numbers 1234567 and 3.14159")));
    }

    [Fact]
    public void FromFile_MalformedJson_ThrowsInvalidDataWithPath()
    {
        string path = Path.Combine(_tempDir, "tokenizer.json");
        string text = File.ReadAllText(Path.Combine(Fixtures.Model, "tokenizer.json"));
        File.WriteAllText(path, text[..(text.Length / 2)]);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => Qwen2Tokenizer.FromFile(path));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.IsAssignableFrom<JsonException>(ex.InnerException);
    }

    [Fact]
    public void FromFile_MissingVocabulary_ThrowsInvalidDataWithPath()
    {
        JsonObject root = LoadTokenizerJson();
        root["model"]!.AsObject().Remove("vocab");
        string path = WriteTokenizerJson(root);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => Qwen2Tokenizer.FromFile(path));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains("model.vocab", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFile_BadMergeString_ThrowsInvalidDataWithPath()
    {
        JsonObject root = LoadTokenizerJson();
        root["model"]!["merges"] = new JsonArray("Ġt he x");
        string path = WriteTokenizerJson(root);

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => Qwen2Tokenizer.FromFile(path));

        Assert.Contains(path, ex.Message, StringComparison.Ordinal);
        Assert.Contains("model.merges[0]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void FromFile_MalformedConfig_ThrowsInvalidDataWithConfigPath()
    {
        File.Copy(Path.Combine(Fixtures.Model, "tokenizer.json"), Path.Combine(_tempDir, "tokenizer.json"));
        string configPath = Path.Combine(_tempDir, "tokenizer_config.json");
        File.WriteAllText(configPath, "{\"eos_token\": ");

        InvalidDataException ex = Assert.Throws<InvalidDataException>(() => Qwen2Tokenizer.FromDirectory(_tempDir));

        Assert.Contains(configPath, ex.Message, StringComparison.Ordinal);
    }

    private static JsonObject LoadTokenizerJson() =>
        JsonNode.Parse(File.ReadAllText(Path.Combine(Fixtures.Model, "tokenizer.json")))!.AsObject();

    private string WriteTokenizerJson(JsonObject root)
    {
        string path = Path.Combine(_tempDir, "tokenizer.json");
        File.WriteAllText(path, root.ToJsonString());
        return path;
    }

    private static List<TokenizerCase> LoadCases()
    {
        using JsonDocument document = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.LlavaTiny, "tokenizer-cases.json")));
        return [.. document.RootElement.EnumerateArray().Select(c => new TokenizerCase(
            c.GetProperty("text").GetString()!,
            [.. c.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())],
            c.GetProperty("decoded").GetString()!))];
    }

    private sealed record TokenizerCase(string Text, int[] Ids, string Decoded);
}
