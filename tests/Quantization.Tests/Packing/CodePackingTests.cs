using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Packing;

public sealed class CodePackingTests
{
    public static TheoryData<CodeFormat, long> Formats()
    {
        var data = new TheoryData<CodeFormat, long>();
        foreach (var f in new[] { CodeFormat.Bits1, CodeFormat.Bits2, CodeFormat.Bits4, CodeFormat.Bits8, CodeFormat.Trits })
        {
            foreach (var len in new long[] { 1, 3, 7, 13, 31, 127, 129 })
            {
                data.Add(f, len);
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(Formats))]
    public void PackUnpack_RandomOddLengths_RoundTrips(CodeFormat format, long length)
    {
        using var scope = NewDisposeScope();
        var gen = new Random((int)format * 1000 + (int)length);
        int b = CodePacking.Base(format);
        var values = Enumerable.Range(0, (int)(3 * 5 * length)).Select(_ => (byte)gen.Next(b)).ToArray();
        var codes = tensor(values).reshape(3, 5, length);

        var packed = CodePacking.Pack(codes, format);

        Assert.Equal(ScalarType.Byte, packed.dtype);
        Assert.Equal(new[] { 3L, 5L, (length + CodePacking.CodesPerByte(format) - 1) / CodePacking.CodesPerByte(format) }, packed.shape);
        var unpacked = CodePacking.Unpack(packed, length, format);
        Assert.Equal(values, unpacked.contiguous().data<byte>().ToArray());
    }

    [Fact]
    public void Pack_DigitsAreLeastSignificantFirst()
    {
        using var scope = NewDisposeScope();
        Assert.Equal(new byte[] { 0b11_10_01_00 }, CodePacking.Pack(tensor(new byte[] { 0, 1, 2, 3 }), CodeFormat.Bits2).data<byte>().ToArray());
        Assert.Equal(new byte[] { 1 + (2 * 3) + (0 * 9) + (1 * 27) + (2 * 81) }, CodePacking.Pack(tensor(new byte[] { 1, 2, 0, 1, 2 }), CodeFormat.Trits).data<byte>().ToArray());
        Assert.Equal(new byte[] { 0b1000_0001, 0b1 }, CodePacking.Pack(tensor(new byte[] { 1, 0, 0, 0, 0, 0, 0, 1, 1 }), CodeFormat.Bits1).data<byte>().ToArray());
    }

    [Fact]
    public void Pack_Trits_UseFiveCodesPerByte()
    {
        Assert.Equal(26, CodePacking.PackedLength(128, CodeFormat.Trits));
        Assert.Equal(16, CodePacking.PackedLength(64, CodeFormat.Bits2));
        Assert.Equal(8, CodePacking.PackedLength(64, CodeFormat.Bits1));
    }

    [Theory]
    [InlineData(CodeFormat.Bits1, 2)]
    [InlineData(CodeFormat.Bits2, 4)]
    [InlineData(CodeFormat.Trits, 3)]
    public void Pack_CodeOutOfRange_Throws(CodeFormat format, int bad)
    {
        using var scope = NewDisposeScope();
        var ex = Assert.Throws<ArgumentException>(() => CodePacking.Pack(tensor(new[] { 0, bad }), format));
        Assert.Contains($"[0, {CodePacking.Base(format) - 1}]", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Unpack_WrongLength_Throws()
    {
        using var scope = NewDisposeScope();
        var packed = CodePacking.Pack(tensor(new byte[] { 1, 2, 3, 0, 1 }), CodeFormat.Bits2);
        Assert.Throws<ArgumentException>(() => CodePacking.Unpack(packed, 9, CodeFormat.Bits2));
        Assert.Throws<ArgumentException>(() => CodePacking.Unpack(packed.to(ScalarType.Int32), 5, CodeFormat.Bits2));
    }
}
