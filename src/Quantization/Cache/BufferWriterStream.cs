using System.Buffers;

namespace VidKV.AI.Quantization.Cache;

/// <summary>A write-only stream that appends to an <see cref="IBufferWriter{T}"/> of bytes.</summary>
internal sealed class BufferWriterStream : Stream
{
    private readonly IBufferWriter<byte> _target;
    private long _written;

    public BufferWriterStream(IBufferWriter<byte> target) => _target = target;

    public override bool CanRead => false;

    public override bool CanSeek => false;

    public override bool CanWrite => true;

    public override long Length => _written;

    public override long Position
    {
        get => _written;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            var span = _target.GetSpan(Math.Min(buffer.Length, 1 << 20));
            int n = Math.Min(span.Length, buffer.Length);
            buffer[..n].CopyTo(span);
            _target.Advance(n);
            buffer = buffer[n..];
            _written += n;
        }
    }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
