namespace VidKV.AI.Backend.Text;

/// <summary>One piece of a <see cref="ChatTurn"/>: a <see cref="TextPart"/>, an <see cref="ImagePart"/> or a <see cref="VideoPart"/>.</summary>
/// <remarks>The set of kinds is closed: only this assembly can add one, so that every kind has a rendering.</remarks>
public abstract record ChatPart
{
    /// <summary>Initializes a part; only the kinds of this assembly exist.</summary>
    private protected ChatPart()
    {
    }
}
