using System.Text.Json.Nodes;
using VidKV.AI.Backend.Models.LlavaOnevision;
using VidKV.AI.Quantization.Cache;
using Xunit;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>
/// A model whose config says it was trained reading scaled ternary values (<c>vidkv_scaled_ternary_values</c>) runs the
/// Compact profile's ternary presets with them (<see cref="VideoLanguageModelBase.CacheOptionsFor"/>); other presets and
/// the Reference profile are left as asked.
/// </summary>
public sealed class ScaledTernaryValuesTests : IDisposable
{
    private readonly string _temp = Path.Combine(Path.GetTempPath(), "vidkv-scaled-" + Guid.NewGuid().ToString("N"));

    [Fact]
    public void Config_RoundTripsTheKey_AndOmitsItWhenFalse()
    {
        var config = LlavaOnevisionConfig.Load(Fixtures.Model);
        Assert.False(config.ScaledTernaryValues);
        Assert.DoesNotContain("vidkv_scaled_ternary_values", config.ToJson(), StringComparison.Ordinal);

        var marked = config with { ScaledTernaryValues = true };
        var json = marked.ToJson();
        Assert.True(JsonNode.Parse(json)!["vidkv_scaled_ternary_values"]!.GetValue<bool>());
        Assert.True(LlavaOnevisionConfig.Parse(System.Text.Json.JsonDocument.Parse(json).RootElement, "test").ScaledTernaryValues);
    }

    [Fact]
    public void MarkedModel_ScalesTheCompactTernaryPresets_Only()
    {
        using var plain = VideoLanguageModel.Load(Fixtures.Model);
        using var marked = VideoLanguageModel.Load(MarkedCopy());
        Assert.False(plain.Info.ScaledTernaryValues);
        Assert.True(marked.Info.ScaledTernaryValues);
        var scaledModel = (VideoLanguageModelBase)marked;
        var plainModel = (VideoLanguageModelBase)plain;

        foreach (var preset in new[] { "vidkv-1.5/1.58", "vidkv-1.25/1.58", "vidkv-1.5/1.66" })
        {
            var compact = KVCacheOptions.FromPreset(preset, CacheProfile.Compact);
            Assert.False(compact.ScaledTernary);
            Assert.Equal(compact with { ScaledTernary = true }, scaledModel.CacheOptionsFor(compact));
            Assert.Equal(compact, plainModel.CacheOptionsFor(compact));
            var reference = KVCacheOptions.FromPreset(preset, CacheProfile.Reference);
            Assert.Equal(reference, scaledModel.CacheOptionsFor(reference));
        }

        foreach (var preset in new[] { "fp16", "kivi-2", "vidkv-1.5/2" })
        {
            var compact = KVCacheOptions.FromPreset(preset, CacheProfile.Compact);
            Assert.Equal(compact, scaledModel.CacheOptionsFor(compact));
        }
    }

    public void Dispose()
    {
        if (Directory.Exists(_temp))
        {
            Directory.Delete(_temp, recursive: true);
        }
    }

    private string MarkedCopy()
    {
        Directory.CreateDirectory(_temp);
        foreach (var file in Directory.GetFiles(Fixtures.Model))
        {
            File.Copy(file, Path.Combine(_temp, Path.GetFileName(file)));
        }

        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(_temp, "config.json")))!;
        config["vidkv_scaled_ternary_values"] = true;
        File.WriteAllText(Path.Combine(_temp, "config.json"), config.ToJsonString());
        return _temp;
    }
}
