using TorchSharp;
using static TorchSharp.torch;
using VidKV.AI.Quantization;

namespace VidKV.AI.Backend.Vision;

/// <summary>
/// The tensor operations of transformers 5's torchvision backend (<c>TorchvisionBackend.resize</c>,
/// <c>center_crop</c>, <c>_rescale_and_normalize</c>), repeated step for step so that pixel values agree with it.
/// </summary>
internal static class PixelOps
{
    /// <summary>
    /// torchvision's <c>resize</c> on a tensor <c>[..., C, H, W]</c>: antialiased bilinear or bicubic (PIL's a = -0.5
    /// kernel) or nearest-exact, the result in the input's type.
    /// </summary>
    /// <remarks>
    /// As in torchvision, uint8 images are resized natively on the CPU (PyTorch's fixed-point kernels, the same
    /// arithmetic as PIL); elsewhere they go through float32 and are clamped (bicubic), rounded and cast back. A size
    /// equal to the input's returns the input itself. torchvision uses the native uint8 kernel for bilinear only on
    /// CPUs with AVX2 (every x64 server); this code always does, so on a CPU without AVX2 a bilinear result may differ
    /// from torchvision's by one uint8 level.
    /// </remarks>
    public static Tensor Resize(Tensor images, int height, int width, ResampleFilter filter)
    {
        long[] shape = images.shape;
        long channels = shape[^3], oldHeight = shape[^2], oldWidth = shape[^1];
        if (oldHeight == height && oldWidth == width)
        {
            return images;
        }

        var mode = filter switch
        {
            ResampleFilter.Nearest => InterpolationMode.NearestExact,
            ResampleFilter.Bilinear => InterpolationMode.Bilinear,

            // Lanczos: transformers' torchvision backend warns and uses bicubic.
            _ => InterpolationMode.Bicubic,
        };
        bool smooth = mode != InterpolationMode.NearestExact;
        var type = images.dtype;
        bool native = type is ScalarType.Float32 or ScalarType.Float64
            || (type == ScalarType.Byte && (!smooth || images.device_type == DeviceType.CPU));

        var x = images.reshape(-1, channels, oldHeight, oldWidth);
        if (!native)
        {
            x = x.to_type(ScalarType.Float32);
        }

        x = nn.functional.interpolate(x, size: [height, width], mode: mode, align_corners: smooth ? false : null, antialias: smooth);
        if (!native)
        {
            if (mode == InterpolationMode.Bicubic && type == ScalarType.Byte)
            {
                using var high = 255.ToScalar();
                x = x.clamp(Scalars.Zero, high);
            }

            if (!torch.is_floating_point(images))
            {
                x = x.round();
            }

            x = x.to_type(type);
        }

        long[] outShape = [.. shape[..^2], height, width];
        return x.reshape(outShape);
    }

    /// <summary>The output size of <see cref="PreprocessorConfig"/>'s <c>size</c> for an image of the given size.</summary>
    /// <remarks>
    /// <c>{"height", "width"}</c> is used as is; <c>{"shortest_edge": S}</c> scales the shorter side to S and the
    /// longer one by the same factor, truncated (transformers' <c>get_resize_output_image_size</c>, not square).
    /// </remarks>
    public static (int Height, int Width) TargetSize(PreprocessorConfig config, int height, int width)
    {
        if (config.Height is int h && config.Width is int w)
        {
            return (h, w);
        }

        int shortest = config.ShortestEdge ?? throw new InvalidOperationException($"'{config.Source}': size is missing.");
        (int shortSide, int longSide) = width <= height ? (width, height) : (height, width);
        if (shortSide == shortest)
        {
            return (height, width);
        }

        int newLong = (int)((double)((long)shortest * longSide) / shortSide);
        return width <= height ? (newLong, shortest) : (shortest, newLong);
    }

    /// <summary>torchvision backend's <c>center_crop</c>: zero-pads a too small image, then cuts the centered rectangle.</summary>
    public static Tensor CenterCrop(Tensor images, int cropHeight, int cropWidth)
    {
        long height = images.shape[^2], width = images.shape[^1];
        if (cropWidth > width || cropHeight > height)
        {
            long left = cropWidth > width ? (cropWidth - width) / 2 : 0;
            long top = cropHeight > height ? (cropHeight - height) / 2 : 0;
            long right = cropWidth > width ? (cropWidth - width + 1) / 2 : 0;
            long bottom = cropHeight > height ? (cropHeight - height + 1) / 2 : 0;
            images = nn.functional.pad(images, [left, right, top, bottom], PaddingModes.Constant, 0);
            height = images.shape[^2];
            width = images.shape[^1];
            if (cropWidth == width && cropHeight == height)
            {
                return images;
            }
        }

        long cropTop = (long)((height - cropHeight) / 2.0);
        long cropLeft = (long)((width - cropWidth) / 2.0);
        return images.narrow(-2, cropTop, cropHeight).narrow(-1, cropLeft, cropWidth);
    }

    /// <summary>
    /// transformers' fused rescale and normalize on <c>[..., 3, H, W]</c>, returning float32: with both on,
    /// <c>(x - mean / factor) / (std / factor)</c> with float32 mean and std multiplied by <c>1 / factor</c>, as
    /// <c>_fuse_mean_std_and_rescale_factor</c> and <c>tvF.normalize</c> compute it.
    /// </summary>
    public static Tensor RescaleAndNormalize(Tensor images, PreprocessorConfig config)
    {
        if (config.DoNormalize)
        {
            var mean = torch.tensor(config.ImageMean.Select(m => (float)m).ToArray(), dtype: ScalarType.Float32, device: images.device);
            var std = torch.tensor(config.ImageStd.Select(s => (float)s).ToArray(), dtype: ScalarType.Float32, device: images.device);
            if (config.DoRescale)
            {
                // Scalars held until the calls return (see Scalars: a temporary may be collected mid-call).
                using var inverse = (1.0 / config.RescaleFactor).ToScalar();
                mean = mean.mul(inverse);
                std = std.mul(inverse);
            }

            return images.to_type(ScalarType.Float32).sub(mean.view(-1, 1, 1)).div(std.view(-1, 1, 1));
        }

        var floats = images.to_type(ScalarType.Float32);
        using var factor = config.DoRescale ? config.RescaleFactor.ToScalar() : null;
        return factor is null ? floats : floats.mul(factor);
    }

    /// <summary>A tensor's type and shape for messages: <c>Float32 [4, 90, 120, 3]</c>.</summary>
    public static string Describe(Tensor tensor) => $"{tensor.dtype} [{string.Join(", ", tensor.shape)}]";
}
