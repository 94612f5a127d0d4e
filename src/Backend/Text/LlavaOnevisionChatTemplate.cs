using System.Text;

namespace VidKV.AI.Backend.Text;

/// <summary>
/// The chat template of LLaVA-OneVision (its <c>chat_template.jinja</c>), written out in C#.
/// </summary>
/// <remarks>
/// <para>
/// Each turn renders as <c>&lt;|im_start|&gt;</c>, the role in lower case and a space; then one
/// <c>&lt;image&gt;</c> per image part, then one <c>&lt;video&gt;</c> per video part (images before videos,
/// whatever their order in the turn); then a newline and the text of each text part; then <c>&lt;|im_end|&gt;</c>.
/// The generation prompt is <c>&lt;|im_start|&gt;assistant</c> and a newline. There is no default system message
/// and no separator between turns.
/// </para>
/// <para>Stateless and thread-safe.</para>
/// </remarks>
public static class LlavaOnevisionChatTemplate
{
    /// <summary>The token that opens a turn.</summary>
    public const string TurnStart = "<|im_start|>";

    /// <summary>The token that closes a turn; also the end-of-sequence token of generation.</summary>
    public const string TurnEnd = "<|im_end|>";

    /// <summary>The placeholder of one image.</summary>
    public const string ImageToken = "<image>";

    /// <summary>The placeholder of one video.</summary>
    public const string VideoToken = "<video>";

    /// <summary>Renders a conversation as the prompt text the model reads.</summary>
    /// <param name="turns">The conversation, oldest turn first.</param>
    /// <param name="addGenerationPrompt">Whether to end with the opening of an assistant turn, for generation.</param>
    /// <returns>The prompt text, with <c>&lt;image&gt;</c> and <c>&lt;video&gt;</c> placeholders.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="turns"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="turns"/> is empty or holds a null turn.</exception>
    public static string Render(IReadOnlyList<ChatTurn> turns, bool addGenerationPrompt = true)
    {
        ArgumentNullException.ThrowIfNull(turns);
        if (turns.Count == 0)
        {
            throw new ArgumentException("A conversation needs at least one turn.", nameof(turns));
        }

        var prompt = new StringBuilder();
        for (int i = 0; i < turns.Count; i++)
        {
            ChatTurn turn = turns[i] ?? throw new ArgumentException($"Turn {i} is null.", nameof(turns));
            prompt.Append(TurnStart).Append(RoleName(turn.Role)).Append(' ');
            AppendPlaceholders<ImagePart>(prompt, turn.Parts, ImageToken);
            AppendPlaceholders<VideoPart>(prompt, turn.Parts, VideoToken);
            foreach (ChatPart part in turn.Parts)
            {
                if (part is TextPart text)
                {
                    prompt.Append('\n').Append(text.Text);
                }
            }

            prompt.Append(TurnEnd);
        }

        if (addGenerationPrompt)
        {
            prompt.Append(TurnStart).Append("assistant\n");
        }

        return prompt.ToString();
    }

    private static void AppendPlaceholders<TPart>(StringBuilder prompt, IReadOnlyList<ChatPart> parts, string placeholder)
        where TPart : ChatPart
    {
        foreach (ChatPart part in parts)
        {
            if (part is TPart)
            {
                prompt.Append(placeholder);
            }
        }
    }

    private static string RoleName(ChatRole role) => role switch
    {
        ChatRole.System => "system",
        ChatRole.User => "user",
        ChatRole.Assistant => "assistant",
        _ => throw new ArgumentOutOfRangeException(nameof(role), role, "Role must be System, User or Assistant."),
    };
}
