using TorchSharp;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Quantizers;

/// <summary>The statistic by which key channels are ranked for the 2-bit (outlier) share.</summary>
public enum ChannelStatistic
{
    /// <summary>max - min per channel (the method's choice).</summary>
    Range,

    /// <summary>Variance per channel.</summary>
    Variance,

    /// <summary>How many of a channel's values lie more than M standard deviations from the layer's mean.</summary>
    OutlierCount,
}

/// <summary>
/// Ranks the channels of a layer's keys and splits them into outlier channels (largest statistic) and easy
/// channels. The statistic is taken per channel index over every batch item, head and token at once: one split
/// of length D per call.
/// </summary>
internal sealed class KeyChannelSelector
{
    // M as a Scalar for the selector's lifetime (a temporary one may be freed while a native call reads it).
    private readonly Scalar _threshold;

    /// <summary>Creates a selector.</summary>
    /// <param name="statistic">Ranking statistic.</param>
    /// <param name="outlierThreshold">M for <see cref="ChannelStatistic.OutlierCount"/>; must be positive.</param>
    public KeyChannelSelector(ChannelStatistic statistic = ChannelStatistic.Range, double outlierThreshold = 3.0)
    {
        if (!Enum.IsDefined(statistic))
        {
            throw new ArgumentOutOfRangeException(nameof(statistic), statistic, "Allowed: Range, Variance, OutlierCount.");
        }

        if (!(outlierThreshold > 0))
        {
            throw new ArgumentOutOfRangeException(nameof(outlierThreshold), outlierThreshold, "The outlier threshold M must be positive.");
        }

        Statistic = statistic;
        OutlierThreshold = outlierThreshold;
        _threshold = outlierThreshold.ToScalar();
    }

    /// <summary>Ranking statistic.</summary>
    public ChannelStatistic Statistic { get; }

    /// <summary>M for the outlier count.</summary>
    public double OutlierThreshold { get; }

    /// <summary>The statistic per channel index: a float32 tensor of length D.</summary>
    public Tensor Score(Tensor keys)
    {
        ArgumentNullException.ThrowIfNull(keys);
        using var scope = NewDisposeScope();
        var flat = keys.to(ScalarType.Float32).reshape(-1, keys.shape[^1]);
        var score = Statistic switch
        {
            ChannelStatistic.Range => flat.amax(new[] { 0L }) - flat.amin(new[] { 0L }),
            ChannelStatistic.Variance => flat.var(0L, false, false, null),
            _ => (flat - flat.mean()).abs().gt(flat.std(unbiased: false).mul(_threshold)).to(ScalarType.Float32).sum(0L),
        };
        GC.KeepAlive(this); // _threshold stays alive until the native calls that read it have returned
        return score.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Splits the channels: the <paramref name="outlierCount"/> highest-scoring ones and the rest, each as an
    /// ascending int64 index list.
    /// </summary>
    public (Tensor Outliers, Tensor Easy) Select(Tensor keys, int outlierCount)
    {
        long d = keys.shape[^1];
        if (outlierCount < 0 || outlierCount > d)
        {
            throw new ArgumentOutOfRangeException(nameof(outlierCount), outlierCount, $"Between 0 and the {d} channels.");
        }

        using var scope = NewDisposeScope();
        var score = Score(keys);
        var mask = zeros(d, ScalarType.Bool, keys.device);
        if (outlierCount > 0)
        {
            // Stable order: ties keep the lower index, so the split is deterministic.
            var order = score.sort(0, true, true).Indices.narrow(0, 0, outlierCount);
            mask.index_fill_(0, order, Scalars.True);
        }

        var outliers = mask.nonzero().reshape(-1);
        var easy = mask.logical_not().nonzero().reshape(-1);
        return (outliers.MoveToOuterDisposeScope(), easy.MoveToOuterDisposeScope());
    }
}
