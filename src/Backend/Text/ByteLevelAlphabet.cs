using System.Text;

namespace VidKV.AI.Backend.Text;

/// <summary>
/// GPT-2's byte-to-character table, used by byte-level BPE (Qwen2, GPT-2, Llama 3): every byte is written as a
/// printable character so that a token is a string; the space byte becomes 'Ġ', the newline byte 'Ċ'.
/// </summary>
internal static class ByteLevelAlphabet
{
    private static readonly Dictionary<char, byte> CharToByte = BuildCharToByte();
    private static readonly char[] ByteToChar = CharToByte.OrderBy(p => p.Value).Select(p => p.Key).ToArray();

    /// <summary>The character that stands for a byte.</summary>
    public static char ForByte(byte b) => ByteToChar[b];

    /// <summary>
    /// Appends the bytes a token stands for, as Hugging Face's ByteLevel decoder does: the mapped bytes when every
    /// character is in the table, otherwise the token's own UTF-8 bytes (added tokens such as "&lt;|im_end|&gt;").
    /// </summary>
    public static void AppendTokenBytes(string token, List<byte> destination)
    {
        int start = destination.Count;
        foreach (char c in token)
        {
            if (!CharToByte.TryGetValue(c, out byte b))
            {
                destination.RemoveRange(start, destination.Count - start);
                destination.AddRange(Encoding.UTF8.GetBytes(token));
                return;
            }

            destination.Add(b);
        }
    }

    private static Dictionary<char, byte> BuildCharToByte()
    {
        // bytes_to_unicode() of GPT-2: printable Latin-1 bytes keep their code point, the other 68 bytes are
        // numbered from U+0100 in byte order.
        var map = new Dictionary<char, byte>(256);
        int next = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            char c = printable ? (char)b : (char)(256 + next++);
            map.Add(c, (byte)b);
        }

        return map;
    }
}
