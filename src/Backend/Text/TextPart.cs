namespace VidKV.AI.Backend.Text;

/// <summary>Text in a <see cref="ChatTurn"/>.</summary>
public sealed record TextPart : ChatPart
{
    /// <summary>Initializes a text part.</summary>
    /// <param name="text">The text, rendered as written (it may be empty).</param>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    public TextPart(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        Text = text;
    }

    /// <summary>Gets the text.</summary>
    public string Text { get; }
}
