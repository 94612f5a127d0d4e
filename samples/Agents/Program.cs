// Agents over a video: a Semantic Kernel kernel whose VideoPlugin asks the VideoLLM questions about a video, then a
// Microsoft.Agents.AI agent over the same IChatClient that keeps a conversation about the video in its session. Each answer
// prints its time and how many prompt tokens came from the video memory: the first question about the video pays for it,
// the later ones little.
//   dotnet run -c Release --project samples/Agents                       # the built-in model, a synthetic scene
//   dotnet run -c Release --project samples/Agents -- --model DIR --video clip.mp4
using System.Diagnostics;
using Microsoft.Agents.AI;
using Microsoft.Extensions.AI;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.SemanticKernel;
using VidKV.AI.Backend;
using VidKV.AI.Training.Synthetic;
using VidKV.AI.Connector;
using VidKV.AI.Quantization.Native;
using ChatMessage = Microsoft.Extensions.AI.ChatMessage;
using ChatRole = Microsoft.Extensions.AI.ChatRole;
using TextContent = Microsoft.Extensions.AI.TextContent;

TorchRuntime.EnsureLoaded();
string? model = Arg("--model"), video = Arg("--video");
string supported = string.Join(", ", VideoLanguageModel.SupportedModelTypes);
if (model is null && !BuiltInModel.IsAvailable)
{
    Console.Error.WriteLine($"The built-in model was not found in '{BuiltInModel.Directory}'; pass --model DIR (a checkpoint folder whose config.json model_type is one of: {supported}) or set {BuiltInModel.DirectoryVariable}.");
    return 1;
}

if (model is not null)
{
    try
    {
        string type = VideoLanguageModel.ReadModelType(model);
        if (!VideoLanguageModel.SupportedModelTypes.Contains(type))
        {
            Console.Error.WriteLine($"--model '{model}' is a '{type}' checkpoint; supported model types: {supported} (e.g. LLaVA-OneVision, Qwen2.5-VL or Qwen2-VL folders as transformers saves them).");
            return 1;
        }
    }
    catch (Exception e) when (e is IOException or InvalidDataException)
    {
        Console.Error.WriteLine($"--model '{model}' is not a checkpoint folder this library loads: {e.Message}");
        return 1;
    }
}

string folder = Directory.CreateTempSubdirectory("vidkv-agents-").FullName;
try
{
    if (video is null)
    {
        var sample = SceneGenerator.Generate(7, new SceneOptions { Family = QuestionFamily.MotionDirection, MinFrames = 32, MaxFrames = 48 });
        video = Path.Combine(folder, "scene.mp4");
        SampleWriter.WriteMp4(sample, video);
        Console.WriteLine($"Video: a synthetic scene ({sample.FrameCount} frames); its true answer to \"{sample.Question}\" is \"{sample.Answer}\".");
    }

    // 1. Semantic Kernel: the VidKV chat client and the VideoPlugin. The first question about the video decodes and encodes
    //    it and remembers its compressed cache; the later ones read it from the video memory and prefill only their own words.
    var builder = Kernel.CreateBuilder();
    builder.AddVidKVChatClient(o => { o.ModelPath = model; o.FrameCount = 16; o.MaxOutputTokens = 24; });
    var kernel = builder.Build();
    var plugin = new VideoPlugin(kernel.GetRequiredService<IChatClient>());
    kernel.Plugins.AddFromObject(plugin, "video");
    foreach (string question in new[] { "What shape is in the video?", "Which way does the red circle move?", "How many objects appear in the video?" })
    {
        VideoAnswer answer = await plugin.AnswerAsync(video, question);
        Console.WriteLine($"[kernel] {question} -> {answer.Text}");
        Console.WriteLine($"         first token {answer.TimeToFirstToken.TotalSeconds:F2} s, answer {answer.Elapsed.TotalSeconds:F2} s, {answer.CachedPromptTokens} of {answer.PromptTokens} prompt tokens from the video memory");
    }

    // The same plugin as a kernel function, as a planner or an agent calls it: the video is remembered already.
    var viaFunction = await kernel.InvokeAsync<string>("video", "ask_about_video", new KernelArguments { ["video"] = video, ["question"] = "What color is the moving object?" });
    Console.WriteLine($"[kernel] ask_about_video(What color is the moving object?) -> {viaFunction}");

    // 2. An agent (Microsoft.Agents.AI) over the same client: a session keeps the conversation, video included, and each
    //    turn reuses the cache of the conversation so far (the video and the earlier turns).
    var client = kernel.GetRequiredService<IChatClient>();
    AIAgent agent = client.AsAIAgent(instructions: "You answer questions about the user's video in a few words.", name: "VideoAnalyst");
    var session = await agent.CreateSessionAsync();
    var turns = new[]
    {
        new ChatMessage(ChatRole.User, [VidKVMedia.FromFile(video), new TextContent("What color is the moving object?")]),
        new ChatMessage(ChatRole.User, "And which way does it move?"),
        new ChatMessage(ChatRole.User, "Is there anything else in the video?"),
    };
    foreach (var turn in turns)
    {
        var watch = Stopwatch.StartNew();
        var response = await agent.RunAsync(turn, session);
        Console.WriteLine($"[agent]  {turn.Text} -> {response.Text}");
        Console.WriteLine($"         answer {watch.Elapsed.TotalSeconds:F2} s, {response.Usage?.CachedInputTokenCount ?? 0} of {response.Usage?.InputTokenCount ?? 0} prompt tokens from the video memory");
    }

    Console.Write("[agent]  And what shape is it? (streamed) -> ");
    await foreach (var update in agent.RunStreamingAsync("And what shape is it?", session))
    {
        Console.Write(update.Text);
    }

    Console.WriteLine();
    kernel.GetRequiredService<VidKVChatClient>().Dispose();
    return 0;
}
finally
{
    Directory.Delete(folder, recursive: true);
}

string? Arg(string name) => Array.IndexOf(args, name) is int i and >= 0 && i + 1 < args.Length ? args[i + 1] : null;
