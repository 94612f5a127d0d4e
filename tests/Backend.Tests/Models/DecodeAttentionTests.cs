using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Backend.Generation;
using VidKV.AI.Backend.Text;
using VidKV.AI.Quantization.Cache;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

public sealed class DecodeAttentionTests
{
    public static TheoryData<string, CacheProfile> Presets()
    {
        var data = new TheoryData<string, CacheProfile>();
        foreach (var preset in KVCacheOptions.PresetNames.Where(p => p != "fp16"))
        {
            data.Add(preset, CacheProfile.Reference);
            data.Add(preset, CacheProfile.Compact);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Presets))]
    public void FusedDecode_GivesTheTokensAndScoresOfDequantizeThenAttend(string preset, CacheProfile profile)
    {
        using var scope = NewDisposeScope();
        using var vlm = LlavaOnevisionVideoModel.Load(Fixtures.Model);
        var frames = randint(0, 256, [6, 48, 40, 3], generator: new Generator(5)).to(ScalarType.Byte);
        var request = new ChatRequest(new[] { new ChatTurn(ChatRole.User, new ChatPart[] { new VideoPart(), new TextPart("What moves?") }) })
        {
            Videos = new[] { MediaSource.FromPixels(frames) },
        };

        // A residual shorter than the prompt, so that decoding attends over quantized blocks.
        var options = KVCacheOptions.FromPreset(preset, profile) with { ResidualLength = 32 };
        var generation = new GenerationOptions { MaxNewTokens = 12, StopAtEndOfTurn = false };
        var fused = vlm.Generate(request, generation, options with { DecodeAttention = DecodeAttention.Fused }).ToList();
        var dequantized = vlm.Generate(request, generation, options with { DecodeAttention = DecodeAttention.Dequantize }).ToList();

        Assert.Equal(dequantized.Select(u => u.TokenId), fused.Select(u => u.TokenId));
        Assert.Equal(12, fused.Count(u => u.TokenId is not null));
        Assert.Equal(dequantized[^1].Usage!.Cache.TotalBytes, fused[^1].Usage!.Cache.TotalBytes);
    }

    [Fact]
    public void UndefinedDecodeAttention_IsRejectedByName()
    {
        var ex = Assert.Throws<ArgumentException>(() => (KVCacheOptions.FromPreset("vidkv-2") with { DecodeAttention = (DecodeAttention)7 }).Validate());
        Assert.Contains("DecodeAttention", ex.Message, StringComparison.Ordinal);
    }
}
