namespace VidKV.AI.Connector.Tests.Samples;

/// <summary>Where the samples this test project builds (ReferenceOutputAssembly=false) put their programs, and how to run them.</summary>
internal static class SampleBuild
{
    /// <summary>The dotnet host running the tests.</summary>
    public static string DotnetHost =>
        Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host
        : Environment.ProcessPath is { } path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path
        : "dotnet";

    /// <summary>samples/&lt;sample&gt;/bin/&lt;configuration&gt;/&lt;tfm&gt;/&lt;file&gt;, for the configuration and framework of this test build.</summary>
    public static string Locate(string sample, string file)
    {
        var output = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string framework = output.Name, configuration = output.Parent!.Name;
        for (var dir = output; dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "samples", sample, "bin", configuration, framework, file);
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"samples/{sample}/bin/{configuration}/{framework}/{file} was not found above {AppContext.BaseDirectory}; build the solution first.");
    }
}
