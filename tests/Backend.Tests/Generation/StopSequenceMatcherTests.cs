using VidKV.AI.Backend.Generation;

namespace VidKV.AI.Backend.Tests.Generation;

public sealed class StopSequenceMatcherTests
{
    [Fact]
    public void StopSpanningPieces_IsNeverEmitted()
    {
        var m = new StopSequenceMatcher(new[] { "END" });
        Assert.Equal("hello ", m.Push("hello E"));
        Assert.Equal(string.Empty, m.Push("N"));
        Assert.Equal(string.Empty, m.Push("D and more"));
        Assert.True(m.Stopped);
        Assert.Equal(string.Empty, m.Push("x"));
        Assert.Equal(string.Empty, m.Flush());
    }

    [Fact]
    public void FalseStart_IsReleased()
    {
        var m = new StopSequenceMatcher(new[] { "END" });
        Assert.Equal("a", m.Push("aE"));
        Assert.Equal("EX", m.Push("X"));
        Assert.False(m.Stopped);
        Assert.Equal(string.Empty, m.Push("EN"));
        Assert.Equal("EN", m.Flush());
    }

    [Fact]
    public void EarliestOfSeveralStops_Wins()
    {
        var m = new StopSequenceMatcher(new[] { "world", "lo w" });
        Assert.Equal("hel", m.Push("hello world"));
        Assert.True(m.Stopped);
    }

    [Fact]
    public void NoStops_PassesEverythingThrough()
    {
        var m = new StopSequenceMatcher(Array.Empty<string>());
        Assert.Equal("abc", m.Push("abc"));
        Assert.Equal(string.Empty, m.Flush());
    }
}
