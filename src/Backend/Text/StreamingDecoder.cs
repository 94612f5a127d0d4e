using System.Buffers;
using System.Runtime.InteropServices;
using System.Text;

namespace VidKV.AI.Backend.Text;

/// <summary>
/// Turns token ids, pushed one at a time as a model generates them, into text that can be shown at once.
/// </summary>
/// <remarks>
/// <para>
/// A byte-level BPE token is a run of UTF-8 bytes, and a character of two to four bytes (accented letters, CJK,
/// emoji) is often split over two or more tokens. <see cref="Push"/> returns only whole characters and keeps the
/// bytes of an incomplete one until the next token completes it, so a character that is merely incomplete never
/// comes out as U+FFFD. Bytes that can never become a character are replaced by U+FFFD as soon as that is certain,
/// exactly as <see cref="Qwen2Tokenizer.Decode"/> does, so the concatenated outputs of <see cref="Push"/> and
/// <see cref="Flush"/> equal <see cref="Qwen2Tokenizer.Decode"/> of all the ids.
/// </para>
/// <para>Not thread-safe: use one instance per generated sequence, from one thread at a time.</para>
/// </remarks>
internal sealed class StreamingDecoder
{
    private readonly Qwen2Tokenizer _tokenizer;
    private readonly bool _skipSpecialTokens;
    private readonly List<byte> _pending = [];

    internal StreamingDecoder(Qwen2Tokenizer tokenizer, bool skipSpecialTokens)
    {
        _tokenizer = tokenizer;
        _skipSpecialTokens = skipSpecialTokens;
    }

    /// <summary>Gets the number of bytes held back because they may begin a character that is not complete yet.</summary>
    public int PendingByteCount => _pending.Count;

    /// <summary>Adds one token and returns the text it completes.</summary>
    /// <param name="id">The token id; an id that is not in the vocabulary adds nothing.</param>
    /// <returns>The newly completed text; empty when the token only began a character or was skipped.</returns>
    public string Push(int id)
    {
        _tokenizer.AppendTokenBytes(id, _skipSpecialTokens, _pending);
        ReadOnlySpan<byte> bytes = CollectionsMarshal.AsSpan(_pending);

        var text = new StringBuilder();
        Span<char> utf16 = stackalloc char[2];
        int consumed = 0;
        while (consumed < bytes.Length)
        {
            OperationStatus status = Rune.DecodeFromUtf8(bytes[consumed..], out Rune rune, out int length);
            if (status == OperationStatus.NeedMoreData)
            {
                // A valid start of a character that the next token may complete.
                break;
            }

            // Done, or InvalidData with rune = U+FFFD for one maximal invalid subsequence, as Encoding.UTF8 does.
            text.Append(utf16[..rune.EncodeToUtf16(utf16)]);
            consumed += length;
        }

        _pending.RemoveRange(0, consumed);
        return text.ToString();
    }

    /// <summary>
    /// Returns the text of the bytes still held back, with an incomplete character replaced by U+FFFD, and empties
    /// the decoder. Call it when the sequence ends.
    /// </summary>
    /// <returns>The remaining text; empty when nothing is pending.</returns>
    public string Flush()
    {
        string text = Encoding.UTF8.GetString(CollectionsMarshal.AsSpan(_pending));
        _pending.Clear();
        return text;
    }
}
