using System.Text;
using VidKV.AI.Backend.Text;

namespace VidKV.AI.Backend.Models.Qwen25VL;

/// <summary>
/// The chat template of Qwen2-VL and Qwen2.5-VL Instruct (their <c>chat_template.json</c>), written out in C#.
/// </summary>
/// <remarks>
/// <para>
/// A conversation that does not open with a system turn gets <c>&lt;|im_start|&gt;system\nYou are a helpful
/// assistant.&lt;|im_end|&gt;\n</c> first. Each turn renders as <c>&lt;|im_start|&gt;</c>, the role, a newline, its parts
/// in order (text as is; an image as <c>&lt;|vision_start|&gt;&lt;|image_pad|&gt;&lt;|vision_end|&gt;</c>, a video with
/// <c>&lt;|video_pad|&gt;</c>), then <c>&lt;|im_end|&gt;</c> and a newline. The generation prompt is
/// <c>&lt;|im_start|&gt;assistant\n</c>.
/// </para>
/// <para>Stateless and thread-safe.</para>
/// </remarks>
public static class QwenChatTemplate
{
    /// <summary>The placeholder of one image (expanded to one token per merged patch).</summary>
    public const string ImagePad = "<|image_pad|>";

    /// <summary>The placeholder of one video (expanded to one token per merged patch).</summary>
    public const string VideoPad = "<|video_pad|>";

    /// <summary>The default system message.</summary>
    public const string DefaultSystem = "You are a helpful assistant.";

    /// <summary>Renders a conversation as the prompt text the model reads.</summary>
    /// <exception cref="ArgumentException">The conversation is empty or holds a null turn.</exception>
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
            if (i == 0 && turn.Role != ChatRole.System)
            {
                prompt.Append("<|im_start|>system\n").Append(DefaultSystem).Append("<|im_end|>\n");
            }

            prompt.Append("<|im_start|>").Append(turn.Role switch
            {
                ChatRole.System => "system",
                ChatRole.User => "user",
                _ => "assistant",
            }).Append('\n');
            foreach (ChatPart part in turn.Parts)
            {
                prompt.Append(part switch
                {
                    TextPart text => text.Text,
                    ImagePart => "<|vision_start|>" + ImagePad + "<|vision_end|>",
                    VideoPart => "<|vision_start|>" + VideoPad + "<|vision_end|>",
                    _ => throw new ArgumentException($"Turn {i} holds a {part.GetType().Name}, which this chat template cannot render.", nameof(turns)),
                });
            }

            prompt.Append("<|im_end|>\n");
        }

        if (addGenerationPrompt)
        {
            prompt.Append("<|im_start|>assistant\n");
        }

        return prompt.ToString();
    }
}
