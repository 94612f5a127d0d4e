// QuickStart: the built-in VideoLLM (VidKV-Tiny) answers questions about a video through Microsoft.Extensions.AI's
// IChatClient, with its key-value cache compressed by VidKV; it prints each answer, the time taken and the bytes the
// KV cache held against an FP16 cache of the same tokens.
//   dotnet run -c Release --project samples/QuickStart                       # synthetic scenes made on the spot (mp4 through
//                                                                            # ffmpeg, or PNG frame folders when it is missing)
//   dotnet run -c Release --project samples/QuickStart -- clip.mp4 "What moves?"
using System.Diagnostics;
using Microsoft.Extensions.AI;
using VidKV.AI.Backend;
using VidKV.AI.Backend.Media;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Training;
using VidKV.AI.Connector;
using VidKV.AI.Quantization.Native;

TorchRuntime.EnsureLoaded();
if (!BuiltInModel.IsAvailable)
{
    Console.Error.WriteLine($"""
        The built-in model VidKV-Tiny was not found in '{BuiltInModel.Directory}' (config.json and model.safetensors).
        It is copied there from the repository's models/{BuiltInModel.Name} folder when the project builds; make sure that
        folder exists (a fresh clone has it once the model ships), or set {BuiltInModel.DirectoryVariable} to a folder holding it.
        """);
    return 1;
}

string folder = Directory.CreateTempSubdirectory("vidkv-quickstart-").FullName;
try
{
    // The questions: the user's own, or three about synthetic scenes of the model's task (with their true answers).
    var questions = new List<(string Video, string Question, string? Expected, int Frames)>();
    if (args.Length >= 2)
    {
        questions.Add((args[0], args[1], null, 16));
    }
    else
    {
        int seed = 2026;
        foreach (var family in new[] { QuestionFamily.Attribute, QuestionFamily.Counting, QuestionFamily.MotionDirection })
        {
            var sample = SceneGenerator.Generate(seed++, new SceneOptions { Family = family, MinFrames = 32, MaxFrames = 64 });
            string path = Path.Combine(folder, family.ToString());
            if (HasFfmpeg())
            {
                path += ".mp4";
                SampleWriter.WriteMp4(sample, path);
            }
            else
            {
                SampleWriter.WriteFrames(sample, path); // numbered PNG frames, read without ffmpeg
            }

            questions.Add((path, sample.Question, sample.Answer, VidKvTinyRecipe.FramesFor(sample)));
        }
    }

    if (!HasFfmpeg() && args.Length < 2)
    {
        Console.WriteLine("ffmpeg is not installed: the demo videos are written as folders of PNG frames, which the library reads without it.");
    }

    var clock = Stopwatch.StartNew();
    using var client = new VidKVChatClient(new VidKVChatClientOptions { CachePreset = "vidkv-1.5/1.58", MaxOutputTokens = 16 });
    Console.WriteLine($"Loaded {client.ModelId} in {clock.Elapsed.TotalSeconds:F1} s; KV cache preset vidkv-1.5/1.58 (compact). TorchSharp: {TorchRuntime.Description}");
    foreach (var (video, question, expected, frames) in questions)
    {
        Console.WriteLine();
        Console.WriteLine($"Video:    {video}");
        Console.WriteLine($"Question: {question}");
        Console.Write("Answer:   ");
        clock.Restart();
        UsageDetails? usage = null;
        var media = Directory.Exists(video) ? VidKVMedia.FromFrameFolder(video) : VidKVMedia.FromFile(video);
        var message = new ChatMessage(ChatRole.User, [media, new TextContent(question)]);
        await foreach (var update in client.GetStreamingResponseAsync([message], new ChatOptions().WithFrameCount(frames)))
        {
            Console.Write(update.Text);
            usage = update.Contents.OfType<UsageContent>().FirstOrDefault()?.Details ?? usage;
        }

        Console.WriteLine();
        if (expected is not null)
        {
            Console.WriteLine($"Expected: {expected}");
        }

        long kv = usage!.AdditionalCounts![VidKVUsage.KVBytesKey], fp16 = usage.AdditionalCounts[VidKVUsage.KVFp16BytesKey];
        Console.WriteLine($"Time:     {clock.Elapsed.TotalSeconds:F2} s for {usage.InputTokenCount} prompt tokens ({usage.AdditionalCounts[VidKVUsage.VideoTokensKey]} of video, {frames} frames) and {usage.OutputTokenCount} new tokens");
        Console.WriteLine($"KV cache: {kv / 1024.0:F1} KiB held, against {fp16 / 1024.0:F1} KiB in FP16 ({(double)kv / fp16:P1})");
    }

    return 0;
}
catch (FfmpegNotFoundException e)
{
    // Only a video file of the user's own needs ffmpeg.
    Console.Error.WriteLine(e.Message);
    Console.Error.WriteLine("Install it with: bash scripts/ensure-ffmpeg.sh");
    return 1;
}
finally
{
    Directory.Delete(folder, recursive: true);
}

static bool HasFfmpeg()
{
    try
    {
        FfmpegTools.Locate("ffmpeg");
        return true;
    }
    catch (FfmpegNotFoundException)
    {
        return false;
    }
}
