using static TorchSharp.torch;

namespace VidKV.AI.Backend.Vision;

/// <summary>
/// One image prepared for LLaVA-OneVision's anyres layout: the whole image and its tiles as the vision tower's input,
/// with the sizes the model needs to pack their features (transformers' <c>pixel_values</c> and <c>image_sizes</c>).
/// </summary>
/// <remarks>Owns <see cref="PixelValues"/>; dispose it, or take the tensor over, when done. Not thread-safe to dispose.</remarks>
public sealed class AnyResImage : IDisposable
{
    /// <summary>Wraps preprocessed pixel values.</summary>
    /// <param name="pixelValues">float32 <c>[1 + Rows * Columns, 3, S, S]</c>: the whole image first, then the tiles row by row.</param>
    /// <param name="originalHeight">The image's height before preprocessing.</param>
    /// <param name="originalWidth">The image's width before preprocessing.</param>
    /// <param name="rows">Tile rows of the chosen resolution.</param>
    /// <param name="columns">Tile columns of the chosen resolution.</param>
    /// <exception cref="ArgumentNullException"><paramref name="pixelValues"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">A size is not positive.</exception>
    public AnyResImage(Tensor pixelValues, int originalHeight, int originalWidth, int rows, int columns)
    {
        ArgumentNullException.ThrowIfNull(pixelValues);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(originalHeight);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(originalWidth);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(rows);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(columns);
        PixelValues = pixelValues;
        OriginalHeight = originalHeight;
        OriginalWidth = originalWidth;
        Rows = rows;
        Columns = columns;
    }

    /// <summary>float32 <c>[1 + Rows * Columns, 3, S, S]</c>: the whole image resized to S x S, then the tiles row by row.</summary>
    public Tensor PixelValues { get; }

    /// <summary>The image's height before preprocessing (<c>image_sizes[i][0]</c>).</summary>
    public int OriginalHeight { get; }

    /// <summary>The image's width before preprocessing (<c>image_sizes[i][1]</c>).</summary>
    public int OriginalWidth { get; }

    /// <summary>Tile rows of the chosen resolution.</summary>
    public int Rows { get; }

    /// <summary>Tile columns of the chosen resolution.</summary>
    public int Columns { get; }

    /// <summary>The number of images in <see cref="PixelValues"/>: <c>1 + Rows * Columns</c>.</summary>
    public int PatchCount => (int)PixelValues.shape[0];

    /// <inheritdoc />
    public void Dispose() => PixelValues.Dispose();
}
