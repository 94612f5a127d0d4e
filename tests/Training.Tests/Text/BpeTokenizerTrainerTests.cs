using VidKV.AI.Backend.Text;

namespace VidKV.AI.Training.Tests.Text;

public sealed class BpeTokenizerTrainerTests : IDisposable
{
    private static readonly string[] Corpus =
    {
        "What colour is the triangle? red", "Which way does the blue square move? left",
        "How many objects appear in the video? three", "What appeared briefly? yellow star",
    };

    private static readonly string[] Specials = { "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>" };

    private readonly string _temp = Directory.CreateTempSubdirectory("vidkv-bpe-").FullName;

    public void Dispose() => Directory.Delete(_temp, recursive: true);

    [Fact]
    public void TrainedTokenizer_LoadsAndRoundTrips()
    {
        string json = BpeTokenizerTrainer.Train(Enumerable.Repeat(Corpus, 10).SelectMany(c => c), 400, Specials);
        int learned = System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("model").GetProperty("vocab").EnumerateObject().Count();
        string path = Path.Combine(_temp, "tokenizer.json");
        File.WriteAllText(path, json);

        var tokenizer = Qwen2Tokenizer.FromFile(path);

        Assert.InRange(learned, 300, 400);
        Assert.Equal(learned + Specials.Length, tokenizer.VocabularySize);
        Assert.Equal(learned, tokenizer.TokenToId("<|endoftext|>"));
        Assert.Equal(learned + 4, tokenizer.TokenToId("<video>"));
        foreach (var text in Corpus.Append("unseen words, ünïcödé 日本 🙂").Append("<|im_start|>user <video>\nWhat colour?<|im_end|>"))
        {
            var ids = tokenizer.Encode(text);
            Assert.Equal(text, tokenizer.Decode(ids));
        }

        // Frequent words became single tokens; the special tokens are single ids.
        Assert.Single(tokenizer.Encode(" triangle"));
        Assert.Equal(new[] { learned + 1, learned + 2 }, tokenizer.Encode("<|im_start|><|im_end|>"));
        Assert.True(tokenizer.Encode(Corpus[0]).Count < Corpus[0].Length / 2);
    }

    [Fact]
    public void Training_IsDeterministic()
    {
        var corpus = Enumerable.Repeat(Corpus, 5).SelectMany(c => c).ToArray();
        Assert.Equal(BpeTokenizerTrainer.Train(corpus, 300, Specials), BpeTokenizerTrainer.Train(corpus, 300, Specials));
        Assert.NotEqual(BpeTokenizerTrainer.Train(corpus, 300, Specials), BpeTokenizerTrainer.Train(corpus, 290, Specials));
    }

    [Fact]
    public void InvalidSettings_AreRejected()
    {
        Assert.Contains("at least 256", Assert.Throws<ArgumentException>(() => BpeTokenizerTrainer.Train(Corpus, 100, Specials)).Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => BpeTokenizerTrainer.Train(Corpus, 300, new[] { "" }));
    }
}
