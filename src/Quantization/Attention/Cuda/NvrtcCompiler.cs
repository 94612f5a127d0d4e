using System.Runtime.InteropServices;
using System.Text;

namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// NVRTC alone, without the CUDA driver or a GPU: compiles kernel source for a named architecture, so that a machine with
/// libnvrtc but no GPU can check that the kernels compile (and read ptxas's report of their registers and local memory).
/// </summary>
internal static unsafe class NvrtcCompiler
{
    /// <summary>libnvrtc to use: <see cref="CudaRuntime.NvrtcVariable"/> if set, else these names on the loader's search path.</summary>
    private static readonly string[] Names = ["libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2", "libnvrtc.so"];

    /// <summary>Loads libnvrtc, or returns <see langword="false"/> with what was tried.</summary>
    public static bool TryLoad(out IntPtr library, out string description)
    {
        var candidates = Environment.GetEnvironmentVariable(CudaRuntime.NvrtcVariable) is { Length: > 0 } path ? new[] { path } : Names;
        foreach (var candidate in candidates)
        {
            if (NativeLibrary.TryLoad(candidate, out library))
            {
                var version = (delegate* unmanaged<int*, int*, int>)NativeLibrary.GetExport(library, "nvrtcVersion");
                int major, minor;
                version(&major, &minor);
                description = $"NVRTC {major}.{minor} ({candidate})";
                return true;
            }
        }

        library = IntPtr.Zero;
        description = $"libnvrtc not found (tried {string.Join(", ", candidates)})";
        return false;
    }

    /// <summary>
    /// Compiles <paramref name="source"/> for <paramref name="architecture"/> (e.g. <c>sm_90</c>) with the options the
    /// kernels are compiled with at run time, plus <paramref name="extraOptions"/>; returns the cubin's size and the log.
    /// </summary>
    /// <exception cref="InvalidOperationException">NVRTC is missing or the source does not compile (the log is in the message).</exception>
    public static (long CubinBytes, string Log) Compile(string source, string name, string architecture, params string[] extraOptions)
    {
        var (cubin, log) = CompileCubin(source, name, architecture, extraOptions);
        return (cubin.Length, log);
    }

    /// <summary>
    /// As <see cref="Compile"/>, returning the cubin itself (an ELF image: <c>cuobjdump -sass</c> lists its machine code).
    /// </summary>
    /// <exception cref="InvalidOperationException">NVRTC is missing or the source does not compile (the log is in the message).</exception>
    public static (byte[] Cubin, string Log) CompileCubin(string source, string name, string architecture, params string[] extraOptions)
    {
        if (!TryLoad(out var lib, out var description))
        {
            throw new InvalidOperationException(description);
        }

        IntPtr N(string export) => NativeLibrary.GetExport(lib, export);
        var create = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)N("nvrtcCreateProgram");
        var compile = (delegate* unmanaged<IntPtr, int, byte**, int>)N("nvrtcCompileProgram");
        var logSize = (delegate* unmanaged<IntPtr, nuint*, int>)N("nvrtcGetProgramLogSize");
        var getLog = (delegate* unmanaged<IntPtr, byte*, int>)N("nvrtcGetProgramLog");
        var cubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)N("nvrtcGetCUBINSize");
        var getCubin = (delegate* unmanaged<IntPtr, byte*, int>)N("nvrtcGetCUBIN");
        var destroy = (delegate* unmanaged<IntPtr*, int>)N("nvrtcDestroyProgram");

        IntPtr program;
        var src = Encoding.UTF8.GetBytes(source + "\0");
        var nm = Encoding.UTF8.GetBytes(name + "\0");
        fixed (byte* s = src, n = nm)
        {
            if (create(&program, s, n, 0, null, null) != 0)
            {
                throw new InvalidOperationException("nvrtcCreateProgram failed.");
            }
        }

        try
        {
            var options = new[] { $"--gpu-architecture={architecture}", "--std=c++17", "-default-device" }.Concat(extraOptions)
                .Select(o => Encoding.UTF8.GetBytes(o + "\0")).ToArray();
            var handles = options.Select(o => GCHandle.Alloc(o, GCHandleType.Pinned)).ToArray();
            int result;
            try
            {
                var pointers = handles.Select(h => h.AddrOfPinnedObject()).ToArray();
                fixed (IntPtr* opts = pointers)
                {
                    result = compile(program, pointers.Length, (byte**)opts);
                }
            }
            finally
            {
                foreach (var h in handles)
                {
                    h.Free();
                }
            }

            nuint size = 0;
            string log = "(no log)";
            if (logSize(program, &size) == 0 && size > 1)
            {
                var bytes = new byte[size];
                fixed (byte* b = bytes)
                {
                    getLog(program, b);
                }

                log = Encoding.UTF8.GetString(bytes).TrimEnd('\0');
            }

            if (result != 0)
            {
                throw new InvalidOperationException($"{description} could not compile {name} for {architecture} (error {result}):\n{log}");
            }

            nuint cubin = 0;
            var image = cubinSize(program, &cubin) == 0 ? new byte[cubin] : [];
            fixed (byte* b = image)
            {
                if (image.Length > 0 && getCubin(program, b) != 0)
                {
                    image = [];
                }
            }

            return (image, log);
        }
        finally
        {
            destroy(&program);
        }
    }
}
