namespace VidKV.AI.Backend.Text;

/// <summary>
/// The place of a video in a <see cref="ChatTurn"/>; the template renders it as one <c>&lt;video&gt;</c> token,
/// which the processor later expands to the frames' tokens. The frames travel separately.
/// </summary>
public sealed record VideoPart : ChatPart;
