using System.Text.Json;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend.Tests.Text;

public sealed class LlavaOnevisionChatTemplateTests
{
    private static readonly Lazy<IReadOnlyDictionary<string, string>> Renderings = new(() =>
    {
        using JsonDocument reference = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.LlavaTiny, "reference.json")));
        return reference.RootElement.GetProperty("renderings").EnumerateObject()
            .ToDictionary(p => p.Name, p => p.Value.GetString()!);
    });

    [Fact]
    public void Reference_HasFourRenderings()
    {
        Assert.Equal(["image", "multi_turn", "multi_turn_no_prompt", "video"], Renderings.Value.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Render_Video_MatchesTransformers()
    {
        ChatTurn[] turns = [new(ChatRole.User, [new VideoPart(), new TextPart("What happens in this video?")])];

        Assert.Equal(Renderings.Value["video"], LlavaOnevisionChatTemplate.Render(turns));
    }

    [Fact]
    public void Render_Image_MatchesTransformers()
    {
        ChatTurn[] turns = [new(ChatRole.User, [new ImagePart(), new TextPart("Describe the image.")])];

        Assert.Equal(Renderings.Value["image"], LlavaOnevisionChatTemplate.Render(turns));
    }

    [Fact]
    public void Render_MultiTurn_MatchesTransformers()
    {
        Assert.Equal(Renderings.Value["multi_turn"], LlavaOnevisionChatTemplate.Render(MultiTurn()));
    }

    [Fact]
    public void Render_MultiTurnWithoutGenerationPrompt_MatchesTransformers()
    {
        Assert.Equal(Renderings.Value["multi_turn_no_prompt"], LlavaOnevisionChatTemplate.Render(MultiTurn(), addGenerationPrompt: false));
    }

    [Fact]
    public void Render_MultiTurn_TokenizesLikeFixture()
    {
        // The multi-turn rendering is also a tokenizer case: template and tokenizer agree end to end.
        string prompt = LlavaOnevisionChatTemplate.Render(MultiTurn());
        using JsonDocument cases = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixtures.LlavaTiny, "tokenizer-cases.json")));
        JsonElement match = cases.RootElement.EnumerateArray().Single(c => c.GetProperty("text").GetString() == prompt);
        int[] expected = [.. match.GetProperty("ids").EnumerateArray().Select(id => id.GetInt32())];

        IReadOnlyList<int> ids = Qwen2Tokenizer.FromDirectory(Fixtures.Model).Encode(prompt);

        Assert.Equal(expected, ids);
        Assert.Equal(4, ids.Count(id => id == 482)); // one <|im_end|> per turn
    }

    [Fact]
    public void Render_MixedParts_ImagesThenVideosThenTexts()
    {
        ChatTurn[] turns =
        [
            new(ChatRole.User, [new TextPart("a"), new VideoPart(), new ImagePart(), new TextPart("b"), new ImagePart()]),
        ];

        string prompt = LlavaOnevisionChatTemplate.Render(turns, addGenerationPrompt: false);

        Assert.Equal("<|im_start|>user <image><image><video>\na\nb<|im_end|>", prompt);
    }

    [Fact]
    public void Render_TurnWithoutParts_RendersRoleOnly()
    {
        string prompt = LlavaOnevisionChatTemplate.Render([new ChatTurn(ChatRole.Assistant, [])]);

        Assert.Equal("<|im_start|>assistant <|im_end|><|im_start|>assistant\n", prompt);
    }

    [Fact]
    public void Render_Empty_ThrowsArgument()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => LlavaOnevisionChatTemplate.Render([]));

        Assert.Equal("turns", ex.ParamName);
    }

    [Fact]
    public void Render_Null_ThrowsArgumentNull()
    {
        Assert.Throws<ArgumentNullException>(() => LlavaOnevisionChatTemplate.Render(null!));
    }

    [Fact]
    public void Render_NullTurn_ThrowsArgument()
    {
        ArgumentException ex = Assert.Throws<ArgumentException>(() => LlavaOnevisionChatTemplate.Render([new ChatTurn(ChatRole.User, "hi"), null!]));

        Assert.Contains("Turn 1", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ChatTurn_InvalidArguments_Throw()
    {
        Assert.Throws<ArgumentNullException>(() => new ChatTurn(ChatRole.User, (IReadOnlyList<ChatPart>)null!));
        Assert.Throws<ArgumentException>(() => new ChatTurn(ChatRole.User, [new TextPart("x"), null!]));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ChatTurn((ChatRole)7, "x"));
        Assert.Throws<ArgumentNullException>(() => new TextPart(null!));
    }

    [Fact]
    public void ChatTurn_TextConstructor_HoldsOneTextPart()
    {
        var turn = new ChatTurn(ChatRole.System, "Be brief.");

        Assert.Equal(ChatRole.System, turn.Role);
        Assert.Equal(new TextPart("Be brief."), Assert.Single(turn.Parts));
    }

    private static ChatTurn[] MultiTurn() =>
    [
        new(ChatRole.System, "You are a helpful assistant."),
        new(ChatRole.User, [new VideoPart(), new TextPart("How many objects are there?")]),
        new(ChatRole.Assistant, "There are three objects."),
        new(ChatRole.User, "Which appeared first?"),
    ];
}
