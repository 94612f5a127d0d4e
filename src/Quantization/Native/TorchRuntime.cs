using System.Diagnostics;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using TorchSharp;

namespace VidKV.AI.Quantization.Native;

/// <summary>
/// Loads TorchSharp's native layer before its first use, with no manual step on systems whose C++
/// runtime is older than the one TorchSharp was built against, and optionally against the libtorch of
/// an existing PyTorch install (which is how CUDA is used).
/// </summary>
/// <remarks>
/// <para>
/// TorchSharp 0.107's <c>libLibTorchSharp.so</c> requires <c>GLIBCXX_3.4.32</c> (GCC 13's libstdc++), but
/// the only symbol of that version it uses is <c>std::ios_base_library_init()</c>, a marker nothing calls.
/// On a system whose libstdc++ lacks that version (Debian 12, Ubuntu 22.04) this class writes a copy of the
/// library with that one requirement marked weak into a per-user cache folder and loads the copy; systems
/// whose libstdc++ is new enough are left untouched and load the original.
/// </para>
/// <para>
/// Set the environment variable <see cref="LibTorchVariable"/> to a folder holding <c>libtorch.so</c>
/// (PyTorch's <c>torch/lib</c>), or to <c>python</c> to ask <c>python3</c> where PyTorch is, to run on that
/// libtorch instead of the packaged CPU one. This class is thread-safe; loading happens once per process.
/// </para>
/// </remarks>
public static class TorchRuntime
{
    /// <summary>Environment variable naming a libtorch folder to load, or <c>python</c> for PyTorch's.</summary>
    public const string LibTorchVariable = "VIDKV_LIBTORCH";

    /// <summary>Environment variable overriding the folder where a patched native library is cached.</summary>
    public const string CacheVariable = "VIDKV_NATIVE_CACHE";

    private const string LibTorchSharpFile = "libLibTorchSharp.so";

    // Symbols whose version may be missing from an older libstdc++ without harm: markers nothing calls.
    private static readonly HashSet<string> HarmlessSymbols = new(StringComparer.Ordinal) { "_ZSt21ios_base_library_initv" };

    private static readonly object Gate = new();
    private static readonly Dictionary<string, IntPtr> Handles = new(StringComparer.Ordinal);
    private static bool _loaded;
    private static string? _description;

    /// <summary>What was loaded, and from where, once <see cref="EnsureLoaded"/> has run.</summary>
    public static string Description => _description ?? "not loaded";

    /// <summary>The libtorch folder in use when one was requested; <see langword="null"/> for the packaged one.</summary>
    public static string? LibTorchDirectory { get; private set; }

    [ModuleInitializer]
    [System.Diagnostics.CodeAnalysis.SuppressMessage("Usage", "CA2255", Justification = "TorchSharp's native layer must be resolved before any TorchSharp type initializer runs.")]
    internal static void InitializeModule()
    {
        // A failure here is reported again, with its trace, by the first explicit EnsureLoaded call or by TorchSharp.
        try
        {
            EnsureLoaded();
        }
        catch (TorchRuntimeException)
        {
        }
    }

    /// <summary>
    /// Makes sure TorchSharp's native layer can be loaded in this process; idempotent.
    /// </summary>
    /// <param name="libTorchDirectory">
    /// A folder with <c>libtorch.so</c> to use instead of the packaged libtorch, <c>python</c> to use the
    /// installed PyTorch's, or <see langword="null"/> for the value of <see cref="LibTorchVariable"/> (or the packaged one).
    /// </param>
    /// <exception cref="TorchRuntimeException">Loading failed; the message lists every step that was tried.</exception>
    public static void EnsureLoaded(string? libTorchDirectory = null)
    {
        lock (Gate)
        {
            if (_loaded)
            {
                return;
            }

            var trace = new List<string>();
            try
            {
                if (OperatingSystem.IsLinux())
                {
                    LoadOnLinux(libTorchDirectory ?? Environment.GetEnvironmentVariable(LibTorchVariable), trace);
                    NativeHeap.KeepLargeBlocks();
                }
                else
                {
                    _description = "platform default (TorchSharp's own loader)";
                }

                _loaded = true;
            }
            catch (Exception ex) when (ex is not TorchRuntimeException)
            {
                trace.Add($"failed: {ex.Message}");
                throw new TorchRuntimeException(trace);
            }
        }
    }

    /// <summary>Initializes CUDA through the loaded libtorch; returns whether a CUDA device is usable.</summary>
    public static bool TryInitializeCuda()
    {
        EnsureLoaded();
        return torch.TryInitializeDeviceType(DeviceType.CUDA) && torch.cuda.is_available();
    }

    private static void LoadOnLinux(string? requestedLibTorch, List<string> trace)
    {
        string? libTorchDir = ResolveLibTorchDirectory(requestedLibTorch, trace);
        string original = FindLibTorchSharp(trace);
        string originalDir = Path.GetDirectoryName(original)!;
        string dependencyDir = libTorchDir ?? originalDir;
        var image = new ElfImage(File.ReadAllBytes(original), original);

        if (libTorchDir is not null)
        {
            // Load the external libtorch first by full path: the TorchSharp layer's dependencies then bind to it by soname.
            foreach (var lib in new[] { "libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so" })
            {
                string path = Path.Combine(libTorchDir, lib);
                if (File.Exists(path))
                {
                    Handles[lib] = LoadOrThrow(path, trace);
                }
            }

            if (!Handles.ContainsKey("libtorch.so"))
            {
                trace.Add($"'{libTorchDir}' has no libtorch.so");
                throw new TorchRuntimeException(trace);
            }
        }
        else
        {
            trace.Add($"trying {original} as it is");
            try
            {
                Handles[LibTorchSharpFile] = NativeLibrary.Load(original);
                _description = $"{original} (unmodified)";
                trace.Add("loaded unmodified");
                RegisterResolver();
                return;
            }
            catch (DllNotFoundException ex) when (ex.Message.Contains("GLIBCXX_", StringComparison.Ordinal) || ex.Message.Contains("CXXABI_", StringComparison.Ordinal))
            {
                trace.Add($"the system C++ runtime is older than the library needs: {FirstLine(ex.Message)}");
            }
            catch (DllNotFoundException ex)
            {
                trace.Add($"failed: {FirstLine(ex.Message)}");
                throw new TorchRuntimeException(trace);
            }
        }

        string toLoad = original;
        var weakened = WeakenMissingVersions(image, original, trace);
        if (weakened.Count > 0)
        {
            toLoad = WriteCachedCopy(image.Bytes, original, trace);
        }

        // The copy lives elsewhere, so its $ORIGIN no longer finds the libtorch next to the original: load those first.
        foreach (var needed in image.Needed())
        {
            string path = Path.Combine(dependencyDir, needed);
            if (!Handles.ContainsKey(needed) && File.Exists(path))
            {
                Handles[needed] = LoadOrThrow(path, trace);
            }
        }

        Handles[LibTorchSharpFile] = LoadOrThrow(toLoad, trace);
        _description = toLoad + (weakened.Count > 0 ? $" (copy of {original} with {string.Join(", ", weakened)} marked weak)" : string.Empty)
            + (libTorchDir is not null ? $" on libtorch from {libTorchDir}" : string.Empty);
        LibTorchDirectory = libTorchDir;
        RegisterResolver();
    }

    internal static string? ResolveLibTorchDirectory(string? requested, List<string> trace)
    {
        if (string.IsNullOrWhiteSpace(requested))
        {
            return null;
        }

        if (string.Equals(requested.Trim(), "python", StringComparison.OrdinalIgnoreCase))
        {
            trace.Add("asking python3 where PyTorch's libtorch is");
            requested = AskPythonForLibTorch(trace);
        }

        string dir = Path.GetFullPath(requested);
        trace.Add($"using libtorch from {dir}");
        if (!Directory.Exists(dir))
        {
            trace.Add($"{LibTorchVariable} names '{dir}', which is not a folder; expected PyTorch's torch/lib folder or 'python'");
            throw new TorchRuntimeException(trace);
        }

        return dir;
    }

    private static string AskPythonForLibTorch(List<string> trace)
    {
        var psi = new ProcessStartInfo("python3", "-c \"import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))\"")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        try
        {
            using var process = Process.Start(psi) ?? throw new InvalidOperationException("python3 did not start");
            string stdout = process.StandardOutput.ReadToEnd();
            string stderr = process.StandardError.ReadToEnd();
            process.WaitForExit();
            if (process.ExitCode != 0)
            {
                trace.Add($"python3 could not import torch: {FirstLine(stderr)}");
                throw new TorchRuntimeException(trace);
            }

            return stdout.Trim();
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            trace.Add($"python3 could not be started ({ex.Message}); install PyTorch or set {LibTorchVariable} to its torch/lib folder");
            throw new TorchRuntimeException(trace);
        }
    }

    internal static string FindLibTorchSharp(List<string> trace)
    {
        var dirs = new List<string>();
        if (AppContext.GetData("NATIVE_DLL_SEARCH_DIRECTORIES") is string searchDirs)
        {
            dirs.AddRange(searchDirs.Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries));
        }

        string torchSharpDir = Path.GetDirectoryName(typeof(torch).Assembly.Location) ?? AppContext.BaseDirectory;
        foreach (var baseDir in new[] { AppContext.BaseDirectory, torchSharpDir, Path.Combine(torchSharpDir, "..", "..") })
        {
            dirs.Add(baseDir);
            dirs.Add(Path.Combine(baseDir, "runtimes", RuntimeInformation.RuntimeIdentifier, "native"));
            dirs.Add(Path.Combine(baseDir, "runtimes", "linux-x64", "native"));
        }

        foreach (var dir in dirs.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal))
        {
            string candidate = Path.Combine(dir, LibTorchSharpFile);
            if (File.Exists(candidate))
            {
                trace.Add($"found {candidate}");
                return candidate;
            }
        }

        trace.Add($"{LibTorchSharpFile} was not found in: {string.Join(", ", dirs.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal))}");
        trace.Add("reference the TorchSharp package and a native libtorch package (libtorch-cpu-linux-x64) from the application");
        throw new TorchRuntimeException(trace);
    }

    /// <summary>Marks weak every C++ runtime version the system lacks, when only harmless marker symbols use it.</summary>
    private static List<string> WeakenMissingVersions(ElfImage image, string path, List<string> trace)
    {
        string? libstdcxx = FindSystemLibStdCxx();
        if (libstdcxx is null)
        {
            trace.Add("no libstdc++.so.6 found in this process or the system library folders");
            throw new TorchRuntimeException(trace);
        }

        var provided = new ElfImage(File.ReadAllBytes(libstdcxx), libstdcxx).VersionDefinitions();
        var weakened = new List<string>();
        foreach (var need in image.VersionNeeds().Where(n => n.File.StartsWith("libstdc++", StringComparison.Ordinal) && !n.IsWeak))
        {
            if (provided.Contains(need.Version))
            {
                continue;
            }

            var symbols = image.SymbolsOfVersion(need.Index);
            if (symbols.Any(s => !HarmlessSymbols.Contains(s)))
            {
                trace.Add($"{path} needs {need.Version} for {string.Join(", ", symbols)}, which {libstdcxx} lacks; install a newer libstdc++ (GCC 13 or later)");
                throw new TorchRuntimeException(trace);
            }

            image.MarkWeak(need);
            weakened.Add(need.Version);
        }

        trace.Add(weakened.Count > 0
            ? $"{libstdcxx} lacks {string.Join(", ", weakened)}, used only by marker symbols: marking weak"
            : $"{libstdcxx} provides every version needed");
        return weakened;
    }

    private static string? FindSystemLibStdCxx()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/maps"))
            {
                int at = line.IndexOf('/', StringComparison.Ordinal);
                if (at >= 0 && line.AsSpan(at).Contains("libstdc++.so", StringComparison.Ordinal))
                {
                    return line[at..].Trim();
                }
            }
        }
        catch (IOException)
        {
        }

        return new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6" }
            .FirstOrDefault(File.Exists);
    }

    private static string WriteCachedCopy(byte[] patched, string original, List<string> trace)
    {
        string hash = Convert.ToHexString(SHA256.HashData(patched))[..16].ToLowerInvariant();
        string root = Environment.GetEnvironmentVariable(CacheVariable) is { Length: > 0 } custom
            ? custom
            : Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg
                ? xdg
                : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "vidkv", "native");
        string dir = Path.Combine(root, hash);
        string target = Path.Combine(dir, LibTorchSharpFile);
        if (File.Exists(target) && new FileInfo(target).Length == patched.Length)
        {
            trace.Add($"using the patched copy at {target}");
            return target;
        }

        try
        {
            Directory.CreateDirectory(dir);
            string temp = Path.Combine(dir, $"{LibTorchSharpFile}.{Environment.ProcessId}.tmp");
            File.WriteAllBytes(temp, patched);
            File.Move(temp, target, overwrite: true);
            trace.Add($"wrote a patched copy of {original} to {target}");
            return target;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            trace.Add($"could not write the patched copy to {target}: {ex.Message}; set {CacheVariable} to a writable folder");
            throw new TorchRuntimeException(trace);
        }
    }

    private static IntPtr LoadOrThrow(string path, List<string> trace)
    {
        trace.Add($"loading {path}");
        try
        {
            return NativeLibrary.Load(path);
        }
        catch (DllNotFoundException ex)
        {
            trace.Add($"failed: {FirstLine(ex.Message)}");
            throw new TorchRuntimeException(trace);
        }
    }

    /// <summary>The address of an export of TorchSharp's native layer (loaded here), or <see cref="IntPtr.Zero"/>.</summary>
    internal static IntPtr NativeExport(string symbol)
    {
        EnsureLoaded();
        lock (Gate)
        {
            if (Handles.TryGetValue(LibTorchSharpFile, out var handle) && NativeLibrary.TryGetExport(handle, symbol, out var address))
            {
                return address;
            }
        }

        // Loaded by TorchSharp's own loader (other platforms): the library is already in the process.
        return NativeLibrary.TryLoad(LibTorchSharpFile, typeof(torch).Assembly, null, out var loaded) && NativeLibrary.TryGetExport(loaded, symbol, out var found)
            ? found
            : IntPtr.Zero;
    }

    private static void RegisterResolver()
    {
        // TorchSharp asks for "LibTorchSharp" (and "torch_cpu"/"torch_cuda" before it): hand it what was loaded here.
        NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);
    }

    private static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        string file = name.StartsWith("lib", StringComparison.Ordinal) ? name : "lib" + name;
        if (!file.EndsWith(".so", StringComparison.Ordinal))
        {
            file += ".so";
        }

        lock (Gate)
        {
            return Handles.TryGetValue(file, out var handle) ? handle : IntPtr.Zero;
        }
    }

    private static string FirstLine(string text)
    {
        // dlerror's text follows the runtime's generic advice on later lines: keep all of it, on one line.
        return string.Join(" ", text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }
}

/// <summary>TorchSharp's native layer could not be loaded; the message lists what was tried, in order.</summary>
public sealed class TorchRuntimeException : Exception
{
    /// <summary>Creates the exception from the steps that were tried.</summary>
    public TorchRuntimeException(IReadOnlyList<string> steps)
        : base(BuildMessage(steps))
    {
        Steps = steps.ToArray();
    }

    /// <summary>The steps tried, in order.</summary>
    public IReadOnlyList<string> Steps { get; }

    private static string BuildMessage(IReadOnlyList<string> steps)
    {
        var sb = new StringBuilder("TorchSharp's native library could not be loaded. Tried:");
        foreach (var step in steps)
        {
            sb.Append(Environment.NewLine).Append("  - ").Append(step);
        }

        return sb.ToString();
    }
}
