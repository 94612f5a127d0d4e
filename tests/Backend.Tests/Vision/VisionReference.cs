using System.Text.Json;
using VidKV.AI.Backend.Checkpoints;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Vision;

/// <summary>
/// Reads the transformers 5.17 references for the preprocessing tests: tools/make_llava_fixtures.py's
/// reference.safetensors and reference.json, and Fixtures/vision/preprocessing-extra.* (made by tools/make_vision_fixtures.py).
/// </summary>
internal static class VisionReference
{
    private static readonly Lazy<JsonDocument> Json = new(() => Parse(Path.Combine(Fixtures.LlavaTiny, "reference.json")));

    private static readonly Lazy<JsonDocument> ExtraJson = new(() => Parse(Path.Combine(Folder, "preprocessing-extra.json")));

    /// <summary>This test folder, next to the fixture folder.</summary>
    private static string Folder => Path.Combine(Fixtures.Root, "vision");

    /// <summary>Reads a tensor of reference.safetensors into new CPU memory (owned by the caller's dispose scope).</summary>
    public static Tensor Read(string name) => ReadFrom(Fixtures.Reference, name);

    /// <summary>Reads a tensor of preprocessing-extra.safetensors into new CPU memory.</summary>
    public static Tensor ReadExtra(string name) => ReadFrom(Path.Combine(Folder, "preprocessing-extra.safetensors"), name);

    /// <summary>An integer of reference.json.</summary>
    public static int Int(string key) => Json.Value.RootElement.GetProperty(key).GetInt32();

    /// <summary>The (height, width, count) rows of a token-count table of preprocessing-extra.json.</summary>
    public static TheoryData<int, int, int> Counts(string key)
    {
        var data = new TheoryData<int, int, int>();
        foreach (var row in ExtraJson.Value.RootElement.GetProperty(key).EnumerateArray())
        {
            data.Add(row[0].GetInt32(), row[1].GetInt32(), row[2].GetInt32());
        }

        return data;
    }

    /// <summary>The largest absolute difference of two tensors of equal shape.</summary>
    public static double MaxAbsDiff(Tensor expected, Tensor actual)
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        return (expected.to_type(ScalarType.Float64) - actual.to_type(ScalarType.Float64)).abs().max().item<double>();
    }

    private static Tensor ReadFrom(string path, string name)
    {
        using var file = SafetensorsFile.Open(path);
        return file.Read(name);
    }

    private static JsonDocument Parse(string path) => JsonDocument.Parse(File.ReadAllText(path));
}
