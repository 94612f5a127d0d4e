namespace VidKV.AI.Backend.Text;

/// <summary>
/// The place of an image in a <see cref="ChatTurn"/>; the template renders it as one <c>&lt;image&gt;</c> token,
/// which the processor later expands to the image's patch tokens. The pixels travel separately.
/// </summary>
public sealed record ImagePart : ChatPart;
