using VidKV.AI.Quantization.Attention;
using VidKV.AI.Quantization.Packing;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Tests.Attention;

public sealed unsafe class CodeTablesTests
{
    private static IEnumerable<FusedKernelPath> VectorPaths()
        => new[] { FusedKernelPath.Avx2, FusedKernelPath.Avx512 }.Where(FusedAttention.IsSupported);

    [Theory]
    [InlineData(CodeFormat.Bits1, 1, 0)]
    [InlineData(CodeFormat.Bits1, 2, -1)]
    [InlineData(CodeFormat.Bits2, 1, 0)]
    [InlineData(CodeFormat.Bits4, 1, 0)]
    [InlineData(CodeFormat.Trits, 1, -1)]
    public void Unpack_VectorPaths_EqualPortable_ForEveryRowLength(CodeFormat format, int mult, int offset)
    {
        var table = CodeTables.Get(format, mult, offset);
        int per = CodePacking.CodesPerByte(format);
        var random = new Random(7);
        var packed = new byte[160]; // room for 150 codes at 8 bits: no read runs past the array
        fixed (float* t = table)
        fixed (byte* src = packed)
        {
            for (int count = 1; count <= 150; count++)
            {
                random.NextBytes(packed);
                if (format == CodeFormat.Trits)
                {
                    for (int i = 0; i < packed.Length; i++)
                    {
                        packed[i] %= 243;
                    }
                }

                var expected = new float[count];
                fixed (float* e = expected)
                {
                    CodeTables.Unpack(src, count, t, e, FusedKernelPath.Portable, per);
                }

                foreach (var path in VectorPaths())
                {
                    var actual = new float[count + CodeTables.Overrun];
                    fixed (float* a = actual)
                    {
                        CodeTables.Unpack(src, count, t, a, path, per);
                    }

                    Assert.True(expected.AsSpan().SequenceEqual(actual.AsSpan(0, count)), $"{format} {path}, {count} codes");
                    Assert.All(actual, x => Assert.True(float.IsFinite(x), $"{format} {path}, {count} codes: the overrun holds {x}"));
                }
            }
        }
    }

    [VbmiTheory]
    [InlineData(CodeFormat.Bits1, 1, 0)]
    [InlineData(CodeFormat.Bits1, 2, -1)]
    [InlineData(CodeFormat.Bits2, 1, 0)]
    [InlineData(CodeFormat.Bits4, 1, 0)]
    public void UnpackRows_EqualsRowByRowPortable_AndReadsNothingPastTheEnd(CodeFormat format, int mult, int offset)
    {
        var table = CodeTables.Get(format, mult, offset);
        int per = CodePacking.CodesPerByte(format), bits = (int)format;
        var levels = new float[16];
        for (int code = 0; code < 1 << bits; code++)
        {
            levels[code] = table[code * CodeTables.Stride];
        }

        var random = new Random(5);
        foreach (int count in new[] { 1, 15, 16, 33, 64, 100, 128 })
        {
            foreach (int rows in new[] { 1, 3, 32 })
            {
                int rowBytes = (count + per - 1) / per;
                var packed = new byte[rows * rowBytes]; // exactly the rows: the last row's codes must come from these bytes alone
                random.NextBytes(packed);
                int stride = SimdKernels.Pad(count) + CodeTables.Overrun;
                var actual = new float[rows * stride];
                var expected = new float[count + CodeTables.Overrun];
                fixed (byte* src = packed)
                fixed (float* a = actual, e = expected, t = table, l = levels)
                {
                    CodeTables.UnpackRows(src, rowBytes, rows, packed.Length, count, bits, l, a, stride);
                    for (int r = 0; r < rows; r++)
                    {
                        CodeTables.Unpack(src + (r * rowBytes), count, t, e, FusedKernelPath.Portable, per);
                        Assert.True(expected.AsSpan(0, count).SequenceEqual(actual.AsSpan(r * stride, count)), $"{format}, {count} codes, row {r} of {rows}");
                    }
                }

                Assert.All(actual, x => Assert.True(float.IsFinite(x), $"{format}, {count} codes: the overrun holds {x}"));
            }
        }
    }

    [TritPlanesFact]
    public void TritPlanes_LevelsEqualTheByteTable_DigitMajor_ForEveryRowLengthAndGroup()
    {
        var table = CodeTables.Get(CodeFormat.Trits, 1, -1);
        var random = new Random(11);
        foreach (int rowBytes in new[] { 1, 2, 13, 16, 26, 33, 64 })
        {
            foreach (int tokens in new[] { 1, 4, 32, 37 })
            {
                int count = rowBytes * tokens, row = TritPlanes.RowFloats(rowBytes), planeStride = TritPlanes.PlaneStride(rowBytes, tokens);
                var packed = new byte[count]; // exactly the run: the decoder must not read past it
                random.NextBytes(packed);
                for (int i = 0; i < count; i++)
                {
                    packed[i] %= 243;
                }

                var planes = new sbyte[5 * planeStride];
                var levels = new float[tokens * row];
                var expected = new float[rowBytes * 5 + CodeTables.Overrun];
                fixed (byte* src = packed)
                fixed (sbyte* pl = planes)
                fixed (float* lv = levels, t = table, e = expected)
                {
                    TritPlanes.Decode(src, count, pl, planeStride);
                    TritPlanes.Levels(pl, planeStride, rowBytes, tokens, lv, row);
                    for (int tok = 0; tok < tokens; tok++)
                    {
                        CodeTables.Unpack(src + (tok * rowBytes), rowBytes * 5, t, e, FusedKernelPath.Portable, 5);
                        for (int c = 0; c < rowBytes * 5; c++)
                        {
                            float actual = lv[(tok * row) + ((c % 5) * TritPlanes.DigitSlots(rowBytes)) + (c / 5)];
                            Assert.True(actual == e[c], $"row of {rowBytes} bytes, {tokens} tokens: token {tok} channel {c} is {actual}, the byte table gives {e[c]}");
                        }
                    }

                    Assert.All(levels, x => Assert.True(float.IsFinite(x) && Math.Abs(x) <= 128, $"row of {rowBytes} bytes, {tokens} tokens: a padding slot holds {x}"));
                }
            }
        }
    }

    [Fact]
    public void ReadRow_Float16_EqualsHalfConversion_ForEveryBitPattern()
    {
        var bits = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var actual = new float[bits.Length];
        fixed (ushort* src = bits)
        fixed (float* dst = actual)
        {
            // An offset of 3 and an odd count exercise the vector body and the scalar tail.
            CodeTables.ReadRow(src, ScalarType.Float16, 0, 3, dst);
            CodeTables.ReadRow(src, ScalarType.Float16, 3, bits.Length - 3, dst + 3);
        }

        for (int i = 0; i < bits.Length; i++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf(bits[i]);
            Assert.True(float.IsNaN(expected) ? float.IsNaN(actual[i]) : BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(actual[i]), $"0x{bits[i]:x4}: {expected} vs {actual[i]}");
        }
    }

    [Fact]
    public void ReadRow_BFloat16_IsTheUpperHalfOfFloat32()
    {
        var bits = Enumerable.Range(0, 65536).Select(i => (ushort)i).ToArray();
        var actual = new float[bits.Length];
        fixed (ushort* src = bits)
        fixed (float* dst = actual)
        {
            CodeTables.ReadRow(src, ScalarType.BFloat16, 5, bits.Length - 5, dst + 5);
        }

        for (int i = 5; i < bits.Length; i++)
        {
            Assert.Equal(bits[i] << 16, BitConverter.SingleToInt32Bits(actual[i]));
        }
    }

    [Fact]
    public void ExpSum_VectorPaths_AgreeWithMathFExp_AndMaskedScoresGiveZero()
    {
        // Scores minus their maximum lie in (-inf, 0]; causal masking writes float.MinValue. Below float32's smallest
        // normal (e^-87.3 = 1.2e-38) the vector paths give 0.
        var x = Enumerable.Range(0, 4001).Select(i => -100f + (i * 0.025f)).Concat(new[] { 0f, -1e-30f, -87.3f, -87.4f, float.MinValue, float.NegativeInfinity }).ToArray();
        foreach (var path in VectorPaths())
        {
            var y = (float[])x.Clone();
            float sum;
            fixed (float* p = y)
            {
                sum = SimdKernels.ExpSum(p, y.Length, 0f, path);
            }

            double expectedSum = 0;
            for (int i = 0; i < x.Length; i++)
            {
                float expected = MathF.Exp(x[i]);
                expectedSum += expected;
                Assert.True(Math.Abs(y[i] - expected) <= 4e-7 * expected + 1.2e-38, $"{path}: exp({x[i]}) = {y[i]}, MathF.Exp gives {expected}");
            }

            Assert.Equal(0f, y[^1]);
            Assert.Equal(0f, y[^2]);
            Assert.True(Math.Abs(sum - expectedSum) <= 1e-5 * expectedSum, $"{path}: sum {sum} vs {expectedSum}");
        }
    }
}

/// <summary>A fact that runs where <see cref="TritPlanes"/> does (AVX-512 F, BW and VBMI) and says why it skips elsewhere.</summary>
public sealed class TritPlanesFactAttribute : FactAttribute
{
    public TritPlanesFactAttribute()
    {
        if (!TritPlanes.IsSupported)
        {
            Skip = "This processor lacks AVX-512 F, BW or VBMI, which the digit-plane trit decoder needs; the fused kernels unpack trits through the byte table here (covered by the other tests).";
        }
    }
}

/// <summary>A theory that runs where <see cref="CodeTables.UnpackRows"/> does (AVX-512 F and VBMI) and says why it skips elsewhere.</summary>
public sealed class VbmiTheoryAttribute : TheoryAttribute
{
    public VbmiTheoryAttribute()
    {
        if (!CodeTables.RowsSupported)
        {
            Skip = "This processor lacks AVX-512 F or VBMI, which the many-row code unpacker needs; the fused kernels unpack row by row here (covered by the other tests).";
        }
    }
}
