using System.Text;

namespace VidKV.AI.Backend.Text;

/// <summary>What <see cref="TokenizerJsonReader"/> takes from a byte-level BPE <c>tokenizer.json</c>.</summary>
/// <param name="Vocabulary">model.vocab: byte-level token strings to ids.</param>
/// <param name="Merges">model.merges in the "a b" spelling, highest priority first.</param>
/// <param name="AddedTokens">added_tokens, in file order.</param>
/// <param name="SplitPattern">The pre-tokenizer regex, or <see langword="null"/> for GPT-2's.</param>
/// <param name="Normalization">The Unicode normalizations to apply in order; empty for none.</param>
/// <param name="UnknownToken">model.unk_token, usually <see langword="null"/>.</param>
internal sealed record TokenizerDefinition(
    IReadOnlyDictionary<string, int> Vocabulary,
    IReadOnlyList<string> Merges,
    IReadOnlyList<AddedToken> AddedTokens,
    string? SplitPattern,
    NormalizationForm[] Normalization,
    string? UnknownToken);

/// <summary>One entry of added_tokens.</summary>
/// <param name="Id">The token id.</param>
/// <param name="Content">The token's text, matched literally.</param>
/// <param name="Special">Whether decoding with skipSpecialTokens leaves it out.</param>
internal readonly record struct AddedToken(int Id, string Content, bool Special);
