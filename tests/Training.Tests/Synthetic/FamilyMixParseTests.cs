using VidKV.AI.Training.Synthetic;

namespace VidKV.AI.Training.Tests.Synthetic;

public sealed class FamilyMixParseTests
{
    [Fact]
    public void Parse_ReadsFamiliesAndWeights_IgnoringCase_LeftOutFamiliesGetNothing()
    {
        var mix = FamilyMix.Parse("attribute, MotionDirection:3 ,Needle:0");

        Assert.Equal(0.25, mix.Fraction(QuestionFamily.Attribute), 12);
        Assert.Equal(0.75, mix.Fraction(QuestionFamily.MotionDirection), 12);
        Assert.Equal(0, mix.Fraction(QuestionFamily.Needle));
        Assert.Equal(0, mix.Fraction(QuestionFamily.Counting));
        Assert.Equal(new[] { QuestionFamily.Attribute, QuestionFamily.MotionDirection }, mix.Families);
    }

    [Theory]
    [InlineData("Colour", "Colour")]
    [InlineData("Attribute:x", "Attribute:x")]
    [InlineData("Attribute:-1", "Attribute:-1")]
    [InlineData("Attribute:1:2", "Attribute:1:2")]
    [InlineData("3", "'3'")]
    [InlineData("Counting,counting", "Counting is named twice")]
    [InlineData("Counting:0", "positive weight")]
    public void Parse_RejectsBadText_NamingThePart(string text, string named)
    {
        var ex = Assert.Throws<ArgumentException>(() => FamilyMix.Parse(text));
        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }
}
