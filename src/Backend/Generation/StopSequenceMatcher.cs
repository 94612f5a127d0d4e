namespace VidKV.AI.Backend.Generation;

/// <summary>
/// Finds stop sequences in text that arrives in pieces. Text that might be the start of a stop sequence is held back
/// until it is known not to be one, so a stop sequence is never emitted, even when it spans several tokens.
/// </summary>
internal sealed class StopSequenceMatcher
{
    private readonly string[] _stops;
    private string _pending = string.Empty;

    /// <summary>Creates a matcher for the given sequences (empty: nothing is held back).</summary>
    public StopSequenceMatcher(IEnumerable<string> stopSequences)
    {
        ArgumentNullException.ThrowIfNull(stopSequences);
        _stops = stopSequences.Where(s => !string.IsNullOrEmpty(s)).Distinct(StringComparer.Ordinal).ToArray();
    }

    /// <summary>Whether a stop sequence has been found.</summary>
    public bool Stopped { get; private set; }

    /// <summary>
    /// Adds text and returns what can be emitted now. Once a stop sequence appears, returns the text before it and
    /// sets <see cref="Stopped"/>; later calls return nothing.
    /// </summary>
    public string Push(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        if (Stopped)
        {
            return string.Empty;
        }

        _pending += text;
        int first = -1;
        foreach (var stop in _stops)
        {
            int at = _pending.IndexOf(stop, StringComparison.Ordinal);
            if (at >= 0 && (first < 0 || at < first))
            {
                first = at;
            }
        }

        if (first >= 0)
        {
            Stopped = true;
            string before = _pending[..first];
            _pending = string.Empty;
            return before;
        }

        // Hold back the longest suffix that is a proper prefix of some stop sequence.
        int hold = 0;
        foreach (var stop in _stops)
        {
            for (int len = Math.Min(stop.Length - 1, _pending.Length); len > hold; len--)
            {
                if (_pending.AsSpan(_pending.Length - len).SequenceEqual(stop.AsSpan(0, len)))
                {
                    hold = len;
                    break;
                }
            }
        }

        string emit = _pending[..(_pending.Length - hold)];
        _pending = _pending[(_pending.Length - hold)..];
        return emit;
    }

    /// <summary>Returns the held-back text at the end of generation (none after a stop).</summary>
    public string Flush()
    {
        string rest = Stopped ? string.Empty : _pending;
        _pending = string.Empty;
        return rest;
    }
}
