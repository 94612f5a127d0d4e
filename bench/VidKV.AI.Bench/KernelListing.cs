using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using TorchSharp;
using VidKV.AI.Backend.Models.Layers;
using VidKV.AI.Quantization.Attention.Cuda;
using VidKV.AI.Quantization.Cache;

namespace VidKV.AI.Bench;

/// <summary>
/// <c>vidkv-bench kernels</c>: every CUDA kernel the library compiles at run time (the tensor-core attention kernel's
/// instantiations, the general attention kernels, the residual append, the decoder's layer kernels), compiled here with
/// NVRTC for one architecture without a GPU: ptxas's registers, spills and shared memory per kernel, and, where
/// <c>cuobjdump</c> is found (<c>VIDKV_CUOBJDUMP</c> or the search path; <c>scripts/cuda-binutils.sh</c> fetches it), the
/// machine code (SASS) with its instruction count per kernel and per class. The GPU machine's time is scarce: a kernel
/// change's static effect (instructions of the main loop, registers, spills) can be read here before any run there.
/// Writes <c>&lt;file&gt;.cu</c>, <c>.cubin</c> and <c>.sass</c> per source file and <c>kernels.md</c> to the output folder.
/// </summary>
internal static partial class KernelListing
{
    /// <summary>Instruction classes counted in the SASS (by opcode prefix), in report order.</summary>
    private static readonly (string Class, string[] Prefixes)[] Classes =
    [
        ("tensor core", ["HMMA", "IMMA", "HGMMA"]),
        ("shared loads", ["LDS", "LDSM"]),
        ("shared stores", ["STS"]),
        ("global loads", ["LDG", "LDGSTS"]),
        ("global stores", ["STG", "RED", "ATOM"]),
        ("fp32", ["FFMA", "FMUL", "FADD", "FMNMX", "FSETP", "FSEL", "MUFU"]),
        ("fp16 / conversions", ["HADD2", "HFMA2", "HMUL2", "F2FP", "F2F", "I2F", "F2I"]),
        ("integer / logic", ["IMAD", "IADD3", "LOP3", "SHF", "LEA", "ISETP", "SEL", "PRMT", "IABS", "POPC", "FLO", "MOV", "CS2R"]),
        ("branches / sync", ["BRA", "BAR", "WARPSYNC", "BSSY", "BSYNC", "EXIT", "RET", "CALL", "DEPBAR", "LDGDEPBAR", "VOTE", "SHFL", "MOVM"]),
    ];

    public static int Run(string commandLine, string architecture, string outDir)
    {
        if (!ArchitecturePattern().IsMatch(architecture))
        {
            throw new ArgumentException($"--arch is '{architecture}'; allowed: sm_XY, e.g. sm_80 or sm_90.");
        }

        if (!NvrtcCompiler.TryLoad(out _, out var why))
        {
            Console.Error.WriteLine($"error: {why}. scripts/ensure-nvrtc.sh installs Debian's libnvrtc11.2 (or set {CudaRuntime.NvrtcVariable}).");
            return 1;
        }

        Directory.CreateDirectory(outDir);
        string? cuobjdump = FindCuobjdump();
        var names = MmaKernelSource.GenericNames.ToList();
        // And the instantiation a 7B-geometry vidkv-1.5/1.58 Compact cache (head dim 128) launches: specialized for its geometry.
        using (var scope = torch.NewDisposeScope())
        using (var cache = new QuantizedKVCache(KVCacheOptions.FromPreset("vidkv-1.5/1.58", CacheProfile.Compact)))
        {
            torch.manual_seed(1);
            cache.Prefill(torch.randn(1, 4, 512, 128), torch.randn(1, 4, 512, 128));
            names.Add(MmaAttention.KernelName(cache.Blocks[0], cache.Options));
        }

        var sources = new (string File, string Text)[]
        {
            ("vidkv_mma_attention", MmaKernelSource.Source(names)),
            ("vidkv_fused_attention", KernelSource.Text),
            ("vidkv_append", ResidualAppend.Source),
            ("vidkv_layers", LayerKernelSource.Text),
        };

        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"# The CUDA kernels compiled for {architecture}");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{commandLine}`; {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC; NVRTC: {why}; cuobjdump: {cuobjdump ?? "not found (no SASS columns)"}.");
        sb.AppendLine("Static counts: instructions in the machine code, not executed ones (a loop's body counts once). Main loop: the");
        sb.AppendLine("smallest loop (a backward branch and what it jumps over) holding the most tensor-core instructions: its");
        sb.AppendLine("instructions, those of inner loops counted once (for the tensor-core attention kernel, about one 32-token unit's work);");
        sb.AppendLine("'-' for kernels without tensor-core instructions.");
        sb.AppendLine();
        sb.Append("| kernel | registers | spill stores / loads (bytes) | static shared (bytes) | SASS instructions | main loop |");
        sb.AppendLine(string.Concat(Classes.Select(c => $" {c.Class} |")));
        sb.Append("|---|---:|---:|---:|---:|---:|");
        sb.AppendLine(string.Concat(Classes.Select(_ => "---:|")));
        foreach (var (file, text) in sources)
        {
            var (cubin, log) = NvrtcCompiler.CompileCubin(text, file + ".cu", architecture, "--ptxas-options=-v");
            File.WriteAllText(Path.Combine(outDir, file + ".cu"), text);
            string cubinPath = Path.Combine(outDir, file + ".cubin");
            File.WriteAllBytes(cubinPath, cubin);
            var sass = cuobjdump is null ? null : Disassemble(cuobjdump, cubinPath);
            if (sass is not null)
            {
                File.WriteAllText(Path.Combine(outDir, file + ".sass"), sass);
            }

            var functions = sass is null ? new Dictionary<string, List<Instruction>>() : SassByFunction(sass);
            foreach (var entry in PtxasEntries(log))
            {
                sb.Append(CultureInfo.InvariantCulture, $"| `{entry.Name}` | {entry.Registers} | {entry.SpillStores} / {entry.SpillLoads} | {entry.Shared} |");
                if (functions.TryGetValue(entry.Name, out var code))
                {
                    var loop = MainLoop(code);
                    sb.Append(CultureInfo.InvariantCulture, $" {code.Count} | {(loop.Count == 0 ? "-" : $"{loop.Count} ({loop.Count(IsTensorCore)} tensor core)")} |");
                    foreach (var (_, prefixes) in Classes)
                    {
                        sb.Append(CultureInfo.InvariantCulture, $" {code.Count(i => IsClass(i.Opcode, prefixes))} |");
                    }
                }
                else
                {
                    sb.Append(string.Concat(Enumerable.Repeat(" |", Classes.Length + 2)));
                }

                sb.AppendLine();
            }
        }

        File.WriteAllText(Path.Combine(outDir, "kernels.md"), sb.ToString());
        Console.Write(sb.ToString());
        return 0;
    }

    /// <summary>cuobjdump from <c>VIDKV_CUOBJDUMP</c>, else the search path, else null.</summary>
    private static string? FindCuobjdump()
    {
        if (Environment.GetEnvironmentVariable("VIDKV_CUOBJDUMP") is { Length: > 0 } set)
        {
            return File.Exists(set) ? set : throw new ArgumentException($"VIDKV_CUOBJDUMP is '{set}', which is not a file; allowed: the path of cuobjdump.");
        }

        return (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, "cuobjdump")).FirstOrDefault(File.Exists);
    }

    private static string Disassemble(string cuobjdump, string cubin)
    {
        var info = new ProcessStartInfo(cuobjdump) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-sass");
        info.ArgumentList.Add(cubin);
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{cuobjdump} did not start.");
        var stderr = process.StandardError.ReadToEndAsync();
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? output : throw new InvalidOperationException($"{cuobjdump} -sass {cubin} failed ({process.ExitCode}): {stderr.Result}");
    }

    /// <summary>One SASS instruction: its address, opcode (predicate dropped) and, for a branch, its target.</summary>
    internal readonly record struct Instruction(int Address, string Opcode, int? Target);

    private static bool IsClass(string opcode, string[] prefixes)
        => prefixes.Any(p => opcode.StartsWith(p, StringComparison.Ordinal) && (opcode.Length == p.Length || opcode[p.Length] == '.'));

    private static bool IsTensorCore(Instruction i) => IsClass(i.Opcode, Classes[0].Prefixes);

    /// <summary>Each function's instructions in a cuobjdump -sass listing.</summary>
    internal static Dictionary<string, List<Instruction>> SassByFunction(string sass)
    {
        var result = new Dictionary<string, List<Instruction>>();
        List<Instruction>? current = null;
        foreach (var line in sass.Split('\n'))
        {
            if (FunctionPattern().Match(line) is { Success: true } f)
            {
                result[f.Groups[1].Value] = current = [];
            }
            else if (current is not null && InstructionPattern().Match(line) is { Success: true } i)
            {
                int address = int.Parse(i.Groups[1].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                int? target = i.Groups[3].Success ? int.Parse(i.Groups[3].Value, NumberStyles.HexNumber, CultureInfo.InvariantCulture) : null;
                current.Add(new Instruction(address, i.Groups[2].Value, target));
            }
        }

        return result;
    }

    /// <summary>
    /// The smallest of the loops (a backward branch and the instructions from its target to it) with the most tensor-core
    /// instructions (out-of-line code that jumps back spans more); empty where no loop holds one.
    /// </summary>
    internal static IReadOnlyList<Instruction> MainLoop(IReadOnlyList<Instruction> code)
        => code.Where(i => i.Opcode.StartsWith("BRA", StringComparison.Ordinal) && i.Target is { } t && t < i.Address)
            .Select(b => code.Where(i => i.Address >= b.Target && i.Address <= b.Address).ToList())
            .Select(l => (Loop: l, TensorCore: l.Count(IsTensorCore)))
            .Where(l => l.TensorCore > 0)
            .OrderByDescending(l => l.TensorCore)
            .ThenBy(l => l.Loop.Count)
            .Select(l => l.Loop)
            .FirstOrDefault() ?? [];

    /// <summary>ptxas's report per entry function (from <c>--ptxas-options=-v</c>).</summary>
    internal static IEnumerable<(string Name, int Registers, int SpillStores, int SpillLoads, int Shared)> PtxasEntries(string log)
    {
        string? name = null;
        int stores = 0, loads = 0;
        foreach (var line in log.Split('\n'))
        {
            if (EntryPattern().Match(line) is { Success: true } e)
            {
                (name, stores, loads) = (e.Groups[1].Value, 0, 0);
            }
            else if (name is not null && SpillPattern().Match(line) is { Success: true } s)
            {
                stores = int.Parse(s.Groups[1].Value, CultureInfo.InvariantCulture);
                loads = int.Parse(s.Groups[2].Value, CultureInfo.InvariantCulture);
            }
            else if (name is not null && RegisterPattern().Match(line) is { Success: true } r)
            {
                int shared = r.Groups[2].Success ? int.Parse(r.Groups[2].Value, CultureInfo.InvariantCulture) : 0;
                yield return (name, int.Parse(r.Groups[1].Value, CultureInfo.InvariantCulture), stores, loads, shared);
                name = null;
            }
        }
    }

    [GeneratedRegex(@"^sm_\d{2,3}a?$")]
    private static partial Regex ArchitecturePattern();

    [GeneratedRegex(@"Function : (\S+)")]
    private static partial Regex FunctionPattern();

    [GeneratedRegex(@"^\s+/\*([0-9a-f]{4,})\*/\s+(?:@!?U?P[T0-9]\s+)?([A-Z][A-Z0-9_.]*)(?:\s+(?:`\(\.L_x_\d+\)|0x([0-9a-f]+)))?")]
    private static partial Regex InstructionPattern();

    [GeneratedRegex(@"Compiling entry function '([^']+)'")]
    private static partial Regex EntryPattern();

    [GeneratedRegex(@"(\d+) bytes spill stores, (\d+) bytes spill loads")]
    private static partial Regex SpillPattern();

    [GeneratedRegex(@"Used (\d+) registers(?:.*?, (\d+) bytes smem)?")]
    private static partial Regex RegisterPattern();
}
