using System.Text;
using Microsoft.ML.Tokenizers;

namespace VidKV.AI.Backend.Text;

/// <summary>Hugging Face's NFC / NFD / NFKC / NFKD normalizers (or a sequence of them) for Microsoft.ML.Tokenizers.</summary>
internal sealed class UnicodeNormalizer : Normalizer
{
    private readonly NormalizationForm[] _forms;

    /// <summary>Initializes a normalizer that applies <paramref name="forms"/> in order.</summary>
    public UnicodeNormalizer(NormalizationForm[] forms)
    {
        ArgumentNullException.ThrowIfNull(forms);
        _forms = forms;
    }

    /// <inheritdoc/>
    public override string Normalize(string original)
    {
        ArgumentNullException.ThrowIfNull(original);
        string text = original;
        foreach (NormalizationForm form in _forms)
        {
            text = text.Normalize(form);
        }

        return text;
    }

    /// <inheritdoc/>
    public override string Normalize(ReadOnlySpan<char> original) => Normalize(original.ToString());
}
