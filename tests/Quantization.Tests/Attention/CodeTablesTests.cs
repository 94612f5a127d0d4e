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

