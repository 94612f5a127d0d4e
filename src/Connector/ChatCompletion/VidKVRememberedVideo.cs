namespace VidKV.AI.Connector;

/// <summary>A video the client's model has encoded ahead of time (see <see cref="VidKVChatClient.RememberVideoAsync"/>).</summary>
/// <param name="PromptTokens">Prompt tokens of the remembered prefix (the turns up to and including the video).</param>
/// <param name="VideoTokens">Of them, video tokens.</param>
/// <param name="KVBytes">Bytes its compressed key-value cache holds.</param>
/// <param name="KVFp16Bytes">Bytes a 16-bit cache of the same tokens would hold.</param>
/// <param name="AlreadyRemembered">Whether it was in the video memory already (nothing was encoded).</param>
public sealed record VidKVRememberedVideo(int PromptTokens, int VideoTokens, long KVBytes, long KVFp16Bytes, bool AlreadyRemembered);
