// Agents over a video: a Semantic Kernel kernel whose VideoPlugin asks the VideoLLM questions about a video, then a
// Microsoft.Agents.AI agent over the same IChatClient that keeps a conversation about the video in its session.
//   dotnet run -c Release --project samples/Agents                       # the built-in model, a synthetic scene
//   dotnet run -c Release --project samples/Agents -- --model DIR --video clip.mp4
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

    // 1. Semantic Kernel: the VidKV chat client and the VideoPlugin, called as kernel functions.
    var builder = Kernel.CreateBuilder();
    builder.AddVidKVChatClient(o => { o.ModelPath = model; o.FrameCount = 16; o.MaxOutputTokens = 24; });
    builder.Plugins.AddVideoPlugin();
    var kernel = builder.Build();
    foreach (string question in new[] { "What shape is in the video?", "Which way does the red circle move?", "How many objects appear in the video?" })
    {
        var answer = await kernel.InvokeAsync<string>("video", "ask_about_video", new KernelArguments { ["video"] = video, ["question"] = question });
        Console.WriteLine($"[kernel] {question} -> {answer}");
    }

    // 2. An agent (Microsoft.Agents.AI) over the same client: a session keeps the conversation, video included.
    var client = kernel.GetRequiredService<IChatClient>();
    AIAgent agent = client.AsAIAgent(instructions: "You answer questions about the user's video in a few words.", name: "VideoAnalyst");
    var session = await agent.CreateSessionAsync();
    var first = new ChatMessage(ChatRole.User, [VidKVMedia.FromFile(video), new TextContent("What color is the moving object?")]);
    Console.WriteLine($"[agent]  {first.Text} -> {(await agent.RunAsync(first, session)).Text}");
    Console.Write("[agent]  And which way does it move? -> ");
    await foreach (var update in agent.RunStreamingAsync("And which way does it move?", session))
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
