using System.Diagnostics;
using Microsoft.Extensions.AI;
using VidKV.AI.Connector.Tests.Samples;
using VidKV.AI.Training.Synthetic;
using ChatRole = Microsoft.Extensions.AI.ChatRole;

namespace VidKV.AI.Connector.Tests.Packaging;

/// <summary>
/// What a NuGet user gets: the libraries packed into a local folder feed, and a fresh console app built against the
/// packages (not the projects) answers with the built-in model the packages carry.
/// </summary>
public sealed class PackedPackagesTests : IDisposable
{
    private static readonly string[] Packed = ["Quantization", "Backend", "Connector"];
    private readonly string _root = Directory.CreateTempSubdirectory("vidkv-packages-").FullName;
    private readonly string _version = $"0.0.0-test.{DateTime.UtcNow:yyyyMMddHHmmss}.{Environment.ProcessId}";

    public void Dispose()
    {
        Directory.Delete(_root, recursive: true);

        // This run's packages were extracted into the global packages folder: remove them again.
        string packages = Environment.GetEnvironmentVariable("NUGET_PACKAGES") is { Length: > 0 } p
            ? p : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");
        foreach (string project in Packed)
        {
            string folder = Path.Combine(packages, $"vidkv.ai.{project.ToLowerInvariant()}", _version);
            if (Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
    }

    [Fact]
    public async Task FreshApp_BuiltFromThePackedPackages_AnswersWithTheBuiltInModel()
    {
        string feed = Directory.CreateDirectory(Path.Combine(_root, "feed")).FullName;
        string repository = RepositoryRoot();
        foreach (string project in Packed)
        {
            await Run(["pack", Path.Combine(repository, "src", project), "-c", Configuration, "--no-build", "-o", feed, $"-p:Version={_version}"], repository);
        }

        Assert.Equal(Packed.Length, Directory.GetFiles(feed, "*.nupkg").Length);

        // A scene the built-in model answers, as PNG frames (no ffmpeg needed in the app).
        var sample = SceneGenerator.Generate(2026, new SceneOptions { Family = QuestionFamily.Attribute, MinFrames = 32, MaxFrames = 64 });
        string frames = Path.Combine(_root, "frames");
        SampleWriter.WriteFrames(sample, frames);

        string app = Directory.CreateDirectory(Path.Combine(_root, "app")).FullName;
        File.WriteAllText(Path.Combine(app, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="vidkv-local" value="{feed}" />
              </packageSources>
            </configuration>
            """);
        File.WriteAllText(Path.Combine(app, "FreshApp.csproj"), $"""
            <Project Sdk="Microsoft.NET.Sdk">
              <PropertyGroup>
                <OutputType>Exe</OutputType>
                <TargetFramework>net10.0</TargetFramework>
                <ImplicitUsings>enable</ImplicitUsings>
                <Nullable>enable</Nullable>
              </PropertyGroup>
              <ItemGroup>
                <PackageReference Include="VidKV.AI.Connector" Version="{_version}" />
                <PackageReference Include="libtorch-cpu-linux-x64" Version="2.10.0" />
                <PackageReference Include="SkiaSharp.NativeAssets.Linux.NoDependencies" Version="4.155.0" />
              </ItemGroup>
            </Project>
            """);
        File.WriteAllText(Path.Combine(app, "Program.cs"), """
            using Microsoft.Extensions.AI;
            using VidKV.AI.Connector;

            using IChatClient client = new VidKVChatClient(new VidKVChatClientOptions { CachePreset = "vidkv-1.5/1.58" });
            var reply = await client.GetResponseAsync(
                [new ChatMessage(ChatRole.User, [VidKVMedia.FromFrameFolder(args[0]), new TextContent(args[1])])],
                new ChatOptions { MaxOutputTokens = 16 }.WithFrameCount(32));
            Console.WriteLine($"REPLY:{reply.Text}");
            """);

        await Run(["build", app, "-c", "Release", "-o", Path.Combine(app, "out")], app);
        string output = await Run([Path.Combine(app, "out", "FreshApp.dll"), frames, sample.Question], app);

        // The same question through the repository's client gives the same reply.
        using var client = new VidKVChatClient(new VidKVChatClientOptions { CachePreset = "vidkv-1.5/1.58" });
        var expected = await client.GetResponseAsync(
            [new ChatMessage(ChatRole.User, [VidKVMedia.FromFrameFolder(frames), new TextContent(sample.Question)])],
            new ChatOptions { MaxOutputTokens = 16 }.WithFrameCount(32));
        Assert.Contains($"REPLY:{expected.Text}\n", output, StringComparison.Ordinal);
        Assert.False(string.IsNullOrWhiteSpace(expected.Text));
        Assert.True(File.Exists(Path.Combine(app, "out", "models", "vidkv-tiny", "model.safetensors")), "the package did not bring the built-in model");
    }

    private static string Configuration => new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VidKV.AI.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"VidKV.AI.sln not found above {AppContext.BaseDirectory}.");
    }

    private static async Task<string> Run(IReadOnlyList<string> arguments, string workingDirectory)
    {
        var start = new ProcessStartInfo(SampleBuild.DotnetHost, arguments)
        {
            WorkingDirectory = workingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_NOLOGO"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(8));
        await process.WaitForExitAsync(timeout.Token);
        string output = await stdout, errors = await stderr;
        Assert.True(process.ExitCode == 0, $"dotnet {string.Join(' ', arguments)} exited with {process.ExitCode}\n{output}\n{errors}");
        return output;
    }
}
