namespace VidKV.AI.Backend.Memory;

/// <summary>The stages of remembering a video (<see cref="IVideoMemoryModel.RememberVideo(ChatRequest, Quantization.Cache.KVCacheOptions, IProgress{VideoMemoryProgress}?, CancellationToken)"/>).</summary>
public enum VideoMemoryStage
{
    /// <summary>Looking for the video in the stores.</summary>
    Lookup,

    /// <summary>Decoding and preprocessing the sampled frames.</summary>
    Decoding,

    /// <summary>Running the vision tower and projector.</summary>
    Encoding,

    /// <summary>Running the decoder over the prompt up to the video's end (the key-value cache is filled and compressed).</summary>
    Prefilling,

    /// <summary>Storing the snapshot.</summary>
    Storing,

    /// <summary>Done: the video is remembered.</summary>
    Done,
}
