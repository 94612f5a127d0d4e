using System.Buffers;

namespace VidKV.AI.Quantization.Cache;

/// <summary>A read-only, seekable stream over a <see cref="ReadOnlySequence{T}"/> of bytes (no copy).</summary>
internal sealed class SequenceStream : Stream
{
    private readonly ReadOnlySequence<byte> _source;
    private long _position;

    public SequenceStream(ReadOnlySequence<byte> source) => _source = source;

    public override bool CanRead => true;

    public override bool CanSeek => true;

    public override bool CanWrite => false;

    public override long Length => _source.Length;

    public override long Position
    {
        get => _position;
        set => _position = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(value), value, "A position is not negative.");
    }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position >= _source.Length)
        {
            return 0;
        }

        var slice = _source.Slice(_position, Math.Min(buffer.Length, _source.Length - _position));
        slice.CopyTo(buffer);
        _position += slice.Length;
        return (int)slice.Length;
    }

    public override long Seek(long offset, SeekOrigin origin)
    {
        Position = origin switch
        {
            SeekOrigin.Begin => offset,
            SeekOrigin.Current => _position + offset,
            _ => _source.Length + offset,
        };
        return _position;
    }

    public override void Flush()
    {
    }

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
