using VidKV.AI.Training.Synthetic;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Training;

/// <summary>Exact-match accuracy of one cache configuration on a set of synthetic questions.</summary>
/// <param name="Label">The configuration's name (preset, profile, value axis).</param>
/// <param name="PerFamily">Correct and total answers per question family.</param>
/// <param name="Cache">Key-value bytes held at the end of the last answer, with the FP16 equivalent.</param>
public sealed record EvaluationResult(string Label, IReadOnlyDictionary<QuestionFamily, (int Correct, int Total)> PerFamily, CacheMemory Cache)
{
    /// <summary>Correct answers over all questions.</summary>
    public double Accuracy => PerFamily.Values.Sum(v => v.Total) == 0 ? 0 : (double)PerFamily.Values.Sum(v => v.Correct) / PerFamily.Values.Sum(v => v.Total);

    /// <summary>Accuracy of one family (0 when it has no question).</summary>
    public double FamilyAccuracy(QuestionFamily family) => PerFamily.TryGetValue(family, out var v) && v.Total > 0 ? (double)v.Correct / v.Total : 0;
}
