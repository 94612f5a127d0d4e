using VidKV.AI.Backend.Text;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace VidKV.AI.Training.Text;

/// <summary>
/// Trains a byte-level BPE tokenizer (Qwen2's normalizer, pre-tokenizer and decoder) on a corpus and writes it as a
/// Hugging Face <c>tokenizer.json</c> that <see cref="Qwen2Tokenizer"/> (and Hugging Face tokenizers) can load.
/// Deterministic: the same corpus and settings give the same file.
/// </summary>
public static class BpeTokenizerTrainer
{
    /// <summary>Qwen2's pre-tokenizer pattern.</summary>
    public const string Qwen2Pattern = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    /// <summary>
    /// Learns merges until the vocabulary (256 bytes + merges) reaches <paramref name="vocabSize"/> or no pair occurs
    /// <paramref name="minFrequency"/> times; special tokens are added after it.
    /// </summary>
    /// <returns>The tokenizer.json text.</returns>
    /// <exception cref="ArgumentException">The vocabulary is smaller than 256 or a special token is empty.</exception>
    public static string Train(IEnumerable<string> corpus, int vocabSize, IReadOnlyList<string> specialTokens, int minFrequency = 2)
    {
        ArgumentNullException.ThrowIfNull(corpus);
        ArgumentNullException.ThrowIfNull(specialTokens);
        if (vocabSize < 256)
        {
            throw new ArgumentException($"vocabSize is {vocabSize}; it must be at least 256 (one token per byte).", nameof(vocabSize));
        }

        if (specialTokens.Any(string.IsNullOrEmpty))
        {
            throw new ArgumentException("Special tokens must not be empty.", nameof(specialTokens));
        }

        var regex = new Regex(Qwen2Pattern, RegexOptions.CultureInvariant);
        var wordCounts = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var text in corpus)
        {
            foreach (Match m in regex.Matches(text.Normalize(NormalizationForm.FormC)))
            {
                string word = string.Concat(Encoding.UTF8.GetBytes(m.Value).Select(ByteLevelAlphabet.ForByte));
                wordCounts[word] = wordCounts.GetValueOrDefault(word) + 1;
            }
        }

        var vocab = new List<string>(Enumerable.Range(0, 256).Select(b => ByteLevelAlphabet.ForByte((byte)b).ToString()));
        var words = wordCounts.OrderBy(p => p.Key, StringComparer.Ordinal).Select(p => (Symbols: p.Key.Select(c => c.ToString()).ToList(), Count: p.Value)).ToList();
        var merges = new List<(string Left, string Right)>();
        while (vocab.Count < vocabSize)
        {
            var pairs = new Dictionary<(string, string), long>();
            foreach (var (symbols, count) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    var pair = (symbols[i], symbols[i + 1]);
                    pairs[pair] = pairs.GetValueOrDefault(pair) + count;
                }
            }

            if (pairs.Count == 0)
            {
                break;
            }

            // Most frequent pair; ties broken by the pair's text so that training is deterministic.
            var best = pairs.OrderByDescending(p => p.Value).ThenBy(p => p.Key.Item1, StringComparer.Ordinal).ThenBy(p => p.Key.Item2, StringComparer.Ordinal).First();
            if (best.Value < minFrequency)
            {
                break;
            }

            var (left, right) = best.Key;
            string merged = left + right;
            merges.Add((left, right));
            vocab.Add(merged);
            foreach (var (symbols, _) in words)
            {
                for (int i = 0; i + 1 < symbols.Count; i++)
                {
                    if (symbols[i] == left && symbols[i + 1] == right)
                    {
                        symbols[i] = merged;
                        symbols.RemoveAt(i + 1);
                    }
                }
            }
        }

        return Write(vocab, merges, specialTokens);
    }

    private static string Write(List<string> vocab, List<(string Left, string Right)> merges, IReadOnlyList<string> specialTokens)
    {
        var vocabObject = new JsonObject();
        for (int i = 0; i < vocab.Count; i++)
        {
            vocabObject[vocab[i]] = i;
        }

        var added = new JsonArray();
        for (int i = 0; i < specialTokens.Count; i++)
        {
            added.Add(new JsonObject
            {
                ["id"] = vocab.Count + i,
                ["content"] = specialTokens[i],
                ["single_word"] = false,
                ["lstrip"] = false,
                ["rstrip"] = false,
                ["normalized"] = false,
                ["special"] = true,
            });
        }

        var byteLevel = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = false, ["use_regex"] = false };
        var root = new JsonObject
        {
            ["version"] = "1.0",
            ["truncation"] = null,
            ["padding"] = null,
            ["added_tokens"] = added,
            ["normalizer"] = new JsonObject { ["type"] = "NFC" },
            ["pre_tokenizer"] = new JsonObject
            {
                ["type"] = "Sequence",
                ["pretokenizers"] = new JsonArray(
                    new JsonObject { ["type"] = "Split", ["pattern"] = new JsonObject { ["Regex"] = Qwen2Pattern }, ["behavior"] = "Isolated", ["invert"] = false },
                    byteLevel.DeepClone()),
            },
            ["post_processor"] = null,
            ["decoder"] = byteLevel.DeepClone(),
            ["model"] = new JsonObject
            {
                ["type"] = "BPE",
                ["dropout"] = null,
                ["unk_token"] = null,
                ["continuing_subword_prefix"] = null,
                ["end_of_word_suffix"] = null,
                ["fuse_unk"] = false,
                ["byte_fallback"] = false,
                ["ignore_merges"] = false,
                ["vocab"] = vocabObject,
                ["merges"] = new JsonArray(merges.Select(m => (JsonNode)new JsonArray(m.Left, m.Right)).ToArray()),
            },
        };
        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true, Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping });
    }
}
