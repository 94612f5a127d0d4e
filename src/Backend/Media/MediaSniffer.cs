using System.Text;

namespace VidKV.AI.Backend.Media;

/// <summary>Which decoder handles a file.</summary>
internal enum MediaFamily
{
    /// <summary>Not a format this library reads.</summary>
    Unknown,

    /// <summary>Zero bytes.</summary>
    Empty,

    /// <summary>An image or animation SkiaSharp decodes.</summary>
    Image,

    /// <summary>A container or stream ffmpeg decodes (including audio-only formats, which then have no video stream).</summary>
    Ffmpeg,

    /// <summary>A recognised format that this library does not read (e.g. HEIF/AVIF images).</summary>
    Unsupported,
}

/// <summary>What the first bytes of a file say it is.</summary>
/// <param name="Family">Which decoder handles it.</param>
/// <param name="Format">A short name: "mp4", "mov", "webm", "mkv", "avi", "gif", "png", ...</param>
internal readonly record struct MediaType(MediaFamily Family, string Format)
{
    /// <summary>A file extension for a temporary copy.</summary>
    public string Extension => Format switch
    {
        "mpegts" => ".ts",
        "mpegps" => ".mpg",
        "asf" => ".wmv",
        _ => "." + Format,
    };
}

/// <summary>Identifies media by its magic bytes (never by its extension alone).</summary>
internal static class MediaSniffer
{
    /// <summary>Bytes <see cref="Sniff"/> looks at.</summary>
    public const int HeadLength = 512;

    /// <summary>What error messages list as supported.</summary>
    public const string Supported =
        "videos (MP4, MOV, M4V, 3GP, MKV, WebM, AVI, FLV, MPEG-TS, MPEG-PS, OGG/OGV, WMV/ASF, Y4M, IVF) through ffmpeg; "
        + "still images (PNG, JPEG, WebP, BMP) and animations (GIF, animated WebP) through SkiaSharp; "
        + "a folder or list of frame images";

    /// <summary>Identifies the media from its first bytes (up to <see cref="HeadLength"/>).</summary>
    public static MediaType Sniff(ReadOnlySpan<byte> head)
    {
        if (head.IsEmpty)
        {
            return new MediaType(MediaFamily.Empty, "empty");
        }

        if (head.StartsWith(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }))
        {
            return new MediaType(MediaFamily.Image, "png");
        }

        if (head.StartsWith(new byte[] { 0xFF, 0xD8, 0xFF }))
        {
            return new MediaType(MediaFamily.Image, "jpeg");
        }

        if (head.StartsWith("GIF87a"u8) || head.StartsWith("GIF89a"u8))
        {
            return new MediaType(MediaFamily.Image, "gif");
        }

        if (head.Length >= 12 && head.StartsWith("RIFF"u8))
        {
            var kind = head.Slice(8, 4);
            if (kind.SequenceEqual("WEBP"u8))
            {
                return new MediaType(MediaFamily.Image, "webp");
            }

            if (kind.SequenceEqual("AVI "u8))
            {
                return new MediaType(MediaFamily.Ffmpeg, "avi");
            }

            if (kind.SequenceEqual("WAVE"u8))
            {
                return new MediaType(MediaFamily.Ffmpeg, "wav");
            }
        }

        if (head.Length >= 12 && head.Slice(4, 4).SequenceEqual("ftyp"u8))
        {
            string brand = Encoding.ASCII.GetString(head.Slice(8, 4));
            return brand switch
            {
                "qt  " => new MediaType(MediaFamily.Ffmpeg, "mov"),
                "avif" or "avis" or "heic" or "heix" or "hevc" or "heim" or "heis" or "mif1" or "msf1" => new MediaType(MediaFamily.Unsupported, brand.Trim()),
                "M4A " or "M4B " => new MediaType(MediaFamily.Ffmpeg, "m4a"),
                _ when brand.StartsWith("3g", StringComparison.Ordinal) => new MediaType(MediaFamily.Ffmpeg, "3gp"),
                _ => new MediaType(MediaFamily.Ffmpeg, "mp4"),
            };
        }

        if (head.Length >= 8 && (head.Slice(4, 4).SequenceEqual("moov"u8) || head.Slice(4, 4).SequenceEqual("mdat"u8)
            || head.Slice(4, 4).SequenceEqual("wide"u8) || head.Slice(4, 4).SequenceEqual("free"u8)))
        {
            return new MediaType(MediaFamily.Ffmpeg, "mov"); // QuickTime files older than 'ftyp'
        }

        if (head.StartsWith(new byte[] { 0x1A, 0x45, 0xDF, 0xA3 }))
        {
            return new MediaType(MediaFamily.Ffmpeg, head.IndexOf("webm"u8) >= 0 ? "webm" : "mkv");
        }

        if (head.StartsWith("FLV"u8))
        {
            return new MediaType(MediaFamily.Ffmpeg, "flv");
        }

        if (head.StartsWith("OggS"u8))
        {
            return new MediaType(MediaFamily.Ffmpeg, "ogg");
        }

        if (head.StartsWith(new byte[] { 0x30, 0x26, 0xB2, 0x75, 0x8E, 0x66, 0xCF, 0x11 }))
        {
            return new MediaType(MediaFamily.Ffmpeg, "asf");
        }

        if (head.StartsWith("YUV4MPEG2"u8))
        {
            return new MediaType(MediaFamily.Ffmpeg, "y4m");
        }

        if (head.StartsWith("DKIF"u8))
        {
            return new MediaType(MediaFamily.Ffmpeg, "ivf");
        }

        if (head.StartsWith(new byte[] { 0x00, 0x00, 0x01, 0xBA }))
        {
            return new MediaType(MediaFamily.Ffmpeg, "mpegps");
        }

        if (head[0] == 0x47 && (head.Length < 189 || head[188] == 0x47) && (head.Length < 377 || head[376] == 0x47))
        {
            return new MediaType(MediaFamily.Ffmpeg, "mpegts");
        }

        if (head.StartsWith("ID3"u8) || head.StartsWith("fLaC"u8) || (head.Length >= 2 && head[0] == 0xFF && (head[1] & 0xE0) == 0xE0))
        {
            return new MediaType(MediaFamily.Ffmpeg, head.StartsWith("fLaC"u8) ? "flac" : "mp3");
        }

        if (head.Length >= 2 && head[0] == (byte)'B' && head[1] == (byte)'M')
        {
            return new MediaType(MediaFamily.Image, "bmp");
        }

        return new MediaType(MediaFamily.Unknown, "unknown");
    }

    /// <summary>
    /// The exception for media that is not supported, naming it and listing what is. It quotes none of the content (a
    /// file named by a caller may be anything, e.g. a link to a secret).
    /// </summary>
    public static NotSupportedException NotSupported(string name, MediaType type)
    {
        if (type.Family == MediaFamily.Unsupported)
        {
            return new NotSupportedException(
                $"'{name}' is a {type.Format.ToUpperInvariant()} image (HEIF/AVIF), which this library does not decode; convert it to PNG or JPEG. Supported: {Supported}.");
        }

        return new NotSupportedException(
            $"'{name}' is not a supported media type: its content matches no supported format, whatever its extension says. Supported: {Supported}.");
    }
}
