using System.Text.Json;
using VidKV.AI.Backend.Checkpoints;
using VidKV.AI.Backend.Media;
using VidKV.AI.Backend.Models.Qwen25VL;
using VidKV.AI.Backend.Text;
using static TorchSharp.torch;

namespace VidKV.AI.Backend.Tests.Models;

/// <summary>
/// The tiny Qwen2.5-VL and Qwen2-VL checkpoints made by tools/make_qwen25vl_fixtures.py with transformers 5.17, and their
/// reference outputs, loaded once per test class.
/// </summary>
public sealed class QwenTinyFixture : IDisposable
{
    private readonly Dictionary<string, SafetensorsFile> _references = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Qwen25VLVideoModel> _models = new(StringComparer.Ordinal);
    private readonly Dictionary<string, JsonDocument> _meta = new(StringComparer.Ordinal);

    public QwenTinyFixture()
    {
        foreach (var family in Families)
        {
            _models[family] = Qwen25VLVideoModel.Load(Path.Combine(Folder(family), "model"));
            _references[family] = SafetensorsFile.Open(Path.Combine(Folder(family), "reference.safetensors"));
            _meta[family] = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(Folder(family), "reference.json")));
        }
    }

    /// <summary>The two fixture families: "qwen2_5_vl" and "qwen2_vl".</summary>
    public static IReadOnlyList<string> Families { get; } = ["qwen2_5_vl", "qwen2_vl"];

    /// <summary>The three reference prompts.</summary>
    public static IReadOnlyList<string> Cases { get; } = ["video", "image", "mixed"];

    /// <summary>tests/Backend.Tests/Fixtures/qwen25vl-tiny.</summary>
    public static string Root => Path.Combine(Fixtures.Root, "qwen25vl-tiny");

    /// <summary>A family's fixture folder.</summary>
    public static string Folder(string family) => family == "qwen2_5_vl" ? Root : Path.Combine(Root, "qwen2vl");

    public Qwen25VLVideoModel Model(string family) => _models[family];

    public JsonElement Meta(string family) => _meta[family].RootElement;

    public bool Has(string family, string name) => _references[family].Tensors.ContainsKey(name);

    /// <summary>A reference tensor; inputs shared by both families (raw pixels, pixel values) live in the Qwen2.5-VL file.</summary>
    public Tensor Ref(string family, string name)
    {
        var file = Has(family, name) ? _references[family] : _references["qwen2_5_vl"];
        var t = file.Read(name);
        return t.is_floating_point() ? t.to(ScalarType.Float32) : t;
    }

    /// <summary>The request transformers' processor was given for a case (pixels as raw uint8).</summary>
    public ChatRequest Request(string family, string name) => name switch
    {
        "video" => new ChatRequest([new ChatTurn(ChatRole.User, [new VideoPart(), new TextPart("What happens in this video?")])])
        {
            Videos = [MediaSource.FromPixels(Ref(family, "video.video0.raw"))],
        },
        "image" => new ChatRequest([new ChatTurn(ChatRole.User, [new ImagePart(), new TextPart("Describe the image.")])])
        {
            Images = [MediaSource.FromPixels(Ref(family, "image.image0.raw"))],
        },
        "mixed" => new ChatRequest(
        [
            new ChatTurn(ChatRole.System, "You are a helpful assistant."),
            new ChatTurn(ChatRole.User, [new TextPart("How many objects are there?"), new ImagePart()]),
            new ChatTurn(ChatRole.Assistant, "There are three objects."),
            new ChatTurn(ChatRole.User, [new VideoPart(), new TextPart("Which appeared first?")]),
        ])
        {
            Images = [MediaSource.FromPixels(Ref(family, "mixed.image0.raw"))],
            Videos = [MediaSource.FromPixels(Ref(family, "mixed.video0.raw"))],
        },
        _ => throw new ArgumentException($"Unknown case '{name}'.", nameof(name)),
    };

    public void Dispose()
    {
        foreach (var m in _models.Values)
        {
            m.Dispose();
        }

        foreach (var r in _references.Values)
        {
            r.Dispose();
        }

        foreach (var d in _meta.Values)
        {
            d.Dispose();
        }
    }
}
