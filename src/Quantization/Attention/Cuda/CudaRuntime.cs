using System.Runtime.InteropServices;
using System.Text;
using VidKV.AI.Quantization.Native;
using static TorchSharp.torch;

namespace VidKV.AI.Quantization.Attention.Cuda;

/// <summary>
/// The CUDA driver (<c>libcuda.so.1</c>) and NVRTC (from the CUDA libraries PyTorch installs, or <see cref="NvrtcVariable"/>),
/// bound through function pointers: compiles CUDA C++ at run time to a cubin for the device's architecture, loads it into
/// the primary context PyTorch uses and launches kernels on PyTorch's legacy default stream, so that they are ordered
/// with TorchSharp's own operations on the same tensors.
/// </summary>
/// <remarks>Thread-safe. Loaded once per process; <see cref="IsAvailable"/> says whether it could be.</remarks>
internal static unsafe class CudaRuntime
{
    /// <summary>Environment variable naming libnvrtc to use (a file), instead of searching PyTorch's install.</summary>
    public const string NvrtcVariable = "VIDKV_NVRTC";

    private static readonly Lazy<Api?> Loaded = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);
    private static string _why = "not tried";

    /// <summary>Whether NVRTC and the driver could be loaded.</summary>
    public static bool IsAvailable => Loaded.Value is not null;

    /// <summary>Why <see cref="IsAvailable"/> is false, or what was loaded.</summary>
    public static string Description
    {
        get
        {
            _ = Loaded.Value;
            return _why;
        }
    }

    /// <summary>The address of a contiguous tensor's first element on its device.</summary>
    public static IntPtr DataPointer(Tensor t)
    {
        if (!t.is_contiguous())
        {
            throw new InvalidOperationException("CUDA kernels read contiguous tensors only.");
        }

        var storageData = (delegate* unmanaged<IntPtr, IntPtr>)StorageDataPointer.Value;
        return storageData(t.Handle) + (nint)(t.storage_offset() * t.ElementSize);
    }

    /// <summary>TorchSharp's native <c>THSStorage_data_ptr</c>: the start of a tensor's storage, on its device.</summary>
    private static readonly Lazy<IntPtr> StorageDataPointer = new(() =>
    {
        var address = TorchRuntime.NativeExport("THSStorage_data_ptr");
        return address != IntPtr.Zero ? address : throw new InvalidOperationException("TorchSharp's native layer exports no THSStorage_data_ptr.");
    });

    /// <summary>Compiles <paramref name="source"/> for device <paramref name="device"/> and returns the module's functions.</summary>
    /// <exception cref="InvalidOperationException">NVRTC or the driver is missing, or compilation failed (the log is in the message).</exception>
    public static IReadOnlyDictionary<string, IntPtr> Compile(string source, string name, int device, IReadOnlyList<string> functions)
    {
        var api = Loaded.Value ?? throw new InvalidOperationException($"CUDA run-time compilation is unavailable: {_why}");
        lock (api)
        {
            api.MakeCurrent(device);
            int major, minor, dev;
            api.Check(api.DeviceGet(&dev, device), "cuDeviceGet");
            api.Check(api.DeviceGetAttribute(&major, 75, dev), "cuDeviceGetAttribute(major)");
            api.Check(api.DeviceGetAttribute(&minor, 76, dev), "cuDeviceGetAttribute(minor)");

            IntPtr program;
            var src = Utf8(source);
            var nm = Utf8(name);
            fixed (byte* s = src, n = nm)
            {
                api.CheckNvrtc(api.CreateProgram(&program, s, n, 0, null, null), "nvrtcCreateProgram");
            }

            try
            {
                var options = new[] { $"--gpu-architecture=sm_{major}{minor}", "--std=c++17", "-default-device" }.Select(Utf8).ToArray();
                var handles = options.Select(o => GCHandle.Alloc(o, GCHandleType.Pinned)).ToArray();
                try
                {
                    var pointers = handles.Select(h => h.AddrOfPinnedObject()).ToArray();
                    int result;
                    fixed (IntPtr* opts = pointers)
                    {
                        result = api.CompileProgram(program, pointers.Length, (byte**)opts);
                    }

                    if (result != 0)
                    {
                        throw new InvalidOperationException($"NVRTC could not compile {name} for sm_{major}{minor} (error {result}):\n{Log(api, program)}");
                    }
                }
                finally
                {
                    foreach (var h in handles)
                    {
                        h.Free();
                    }
                }

                nuint size;
                api.CheckNvrtc(api.GetCubinSize(program, &size), "nvrtcGetCUBINSize");
                var cubin = new byte[size];
                fixed (byte* c = cubin)
                {
                    api.CheckNvrtc(api.GetCubin(program, c), "nvrtcGetCUBIN");
                    IntPtr module;
                    api.Check(api.ModuleLoadData(&module, c), "cuModuleLoadData");
                    var result = new Dictionary<string, IntPtr>();
                    foreach (var f in functions)
                    {
                        IntPtr fn;
                        var fname = Utf8(f);
                        fixed (byte* fp = fname)
                        {
                            api.Check(api.ModuleGetFunction(&fn, module, fp), $"cuModuleGetFunction({f})");
                        }

                        result[f] = fn;
                    }

                    return result;
                }
            }
            finally
            {
                api.DestroyProgram(&program);
            }
        }
    }

    /// <summary>The device's multiprocessor count (CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT).</summary>
    public static int MultiprocessorCount(int device)
    {
        var api = Loaded.Value ?? throw new InvalidOperationException($"CUDA is unavailable: {_why}");
        lock (api)
        {
            int dev, count;
            api.Check(api.DeviceGet(&dev, device), "cuDeviceGet");
            api.Check(api.DeviceGetAttribute(&count, 16, dev), "cuDeviceGetAttribute(MULTIPROCESSOR_COUNT)");
            return count;
        }
    }

    /// <summary>Raises a function's dynamic shared memory limit.</summary>
    public static void SetMaxDynamicSharedMemory(IntPtr function, int bytes, int device)
    {
        var api = Loaded.Value!;
        lock (api)
        {
            api.MakeCurrent(device);
            api.Check(api.FuncSetAttribute(function, 8, bytes), "cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)");
        }
    }

    /// <summary>Launches a kernel whose single parameter is the struct <paramref name="args"/> on the legacy default stream.</summary>
    public static void Launch<T>(IntPtr function, int device, (uint X, uint Y, uint Z) grid, uint threads, uint sharedBytes, ref T args)
        where T : unmanaged
    {
        var api = Loaded.Value!;
        fixed (T* a = &args)
        {
            void* single = a;
            lock (api)
            {
                api.MakeCurrent(device);
                api.Check(api.LaunchKernel(function, grid.X, grid.Y, grid.Z, threads, 1, 1, sharedBytes, IntPtr.Zero, &single, null), "cuLaunchKernel");
            }
        }
    }

    private static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s + "\0");

    private static string Log(Api api, IntPtr program)
    {
        nuint size;
        if (api.GetProgramLogSize(program, &size) != 0 || size == 0)
        {
            return "(no log)";
        }

        var log = new byte[size];
        fixed (byte* l = log)
        {
            api.GetProgramLog(program, l);
        }

        return Encoding.UTF8.GetString(log).TrimEnd('\0');
    }

    private static Api? Load()
    {
        var tried = new List<string>();
        try
        {
            if (!OperatingSystem.IsLinux())
            {
                _why = "run-time CUDA compilation is implemented for Linux only";
                return null;
            }

            if (!NativeLibrary.TryLoad("libcuda.so.1", out var driver))
            {
                _why = "the CUDA driver (libcuda.so.1) is not installed";
                return null;
            }

            IntPtr nvrtc = IntPtr.Zero;
            foreach (var candidate in NvrtcCandidates())
            {
                tried.Add(candidate);
                if (NativeLibrary.TryLoad(candidate, out nvrtc))
                {
                    break;
                }
            }

            if (nvrtc == IntPtr.Zero)
            {
                _why = $"libnvrtc was not found (tried {string.Join(", ", tried)}); install PyTorch with CUDA or set {NvrtcVariable} to libnvrtc.so";
                return null;
            }

            var api = new Api(driver, nvrtc);
            api.Check(api.Init(0), "cuInit");
            int major, minor;
            api.GetVersion(&major, &minor);
            _why = $"NVRTC {major}.{minor} ({tried[^1]})";
            return api;
        }
        catch (Exception ex) when (ex is EntryPointNotFoundException or InvalidOperationException or DllNotFoundException)
        {
            _why = $"CUDA run-time compilation could not be set up: {ex.Message}";
            return null;
        }
    }

    /// <summary>Where libnvrtc may be: the variable, then the CUDA wheels next to PyTorch, then the loader's search path.</summary>
    private static IEnumerable<string> NvrtcCandidates()
    {
        if (Environment.GetEnvironmentVariable(NvrtcVariable) is { Length: > 0 } explicitPath)
        {
            yield return explicitPath;
            yield break;
        }

        if (TorchRuntime.LibTorchDirectory is { } torchLib)
        {
            // site-packages/torch/lib -> site-packages/nvidia/**/lib/libnvrtc.so.*
            var sitePackages = Path.GetFullPath(Path.Combine(torchLib, "..", ".."));
            var nvidia = Path.Combine(sitePackages, "nvidia");
            if (Directory.Exists(nvidia))
            {
                foreach (var file in Directory.EnumerateFiles(nvidia, "libnvrtc.so*", SearchOption.AllDirectories)
                    .Where(f => !Path.GetFileName(f).Contains("builtins", StringComparison.Ordinal))
                    .OrderByDescending(f => f, StringComparer.Ordinal))
                {
                    yield return file;
                }
            }

            foreach (var file in Directory.EnumerateFiles(torchLib, "libnvrtc*.so*").Where(f => !f.Contains("builtins", StringComparison.Ordinal)))
            {
                yield return file;
            }
        }

        foreach (var name in new[] { "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so" })
        {
            yield return name;
        }
    }

    /// <summary>The entry points used.</summary>
    private sealed class Api
    {
        private readonly Dictionary<int, IntPtr> _contexts = new();

        public Api(IntPtr driver, IntPtr nvrtc)
        {
            IntPtr D(string name) => NativeLibrary.GetExport(driver, name);
            IntPtr N(string name) => NativeLibrary.GetExport(nvrtc, name);
            Init = (delegate* unmanaged<uint, int>)D("cuInit");
            DeviceGet = (delegate* unmanaged<int*, int, int>)D("cuDeviceGet");
            DeviceGetAttribute = (delegate* unmanaged<int*, int, int, int>)D("cuDeviceGetAttribute");
            PrimaryCtxRetain = (delegate* unmanaged<IntPtr*, int, int>)D("cuDevicePrimaryCtxRetain");
            CtxSetCurrent = (delegate* unmanaged<IntPtr, int>)D("cuCtxSetCurrent");
            ModuleLoadData = (delegate* unmanaged<IntPtr*, void*, int>)D("cuModuleLoadData");
            ModuleGetFunction = (delegate* unmanaged<IntPtr*, IntPtr, byte*, int>)D("cuModuleGetFunction");
            FuncSetAttribute = (delegate* unmanaged<IntPtr, int, int, int>)D("cuFuncSetAttribute");
            LaunchKernel = (delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int>)D("cuLaunchKernel");
            GetErrorString = (delegate* unmanaged<int, byte**, int>)D("cuGetErrorString");
            GetVersion = (delegate* unmanaged<int*, int*, int>)N("nvrtcVersion");
            CreateProgram = (delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int>)N("nvrtcCreateProgram");
            CompileProgram = (delegate* unmanaged<IntPtr, int, byte**, int>)N("nvrtcCompileProgram");
            GetProgramLogSize = (delegate* unmanaged<IntPtr, nuint*, int>)N("nvrtcGetProgramLogSize");
            GetProgramLog = (delegate* unmanaged<IntPtr, byte*, int>)N("nvrtcGetProgramLog");
            GetCubinSize = (delegate* unmanaged<IntPtr, nuint*, int>)N("nvrtcGetCUBINSize");
            GetCubin = (delegate* unmanaged<IntPtr, byte*, int>)N("nvrtcGetCUBIN");
            DestroyProgram = (delegate* unmanaged<IntPtr*, int>)N("nvrtcDestroyProgram");
        }

        public delegate* unmanaged<uint, int> Init { get; }

        public delegate* unmanaged<int*, int, int> DeviceGet { get; }

        public delegate* unmanaged<int*, int, int, int> DeviceGetAttribute { get; }

        public delegate* unmanaged<IntPtr*, int, int> PrimaryCtxRetain { get; }

        public delegate* unmanaged<IntPtr, int> CtxSetCurrent { get; }

        public delegate* unmanaged<IntPtr*, void*, int> ModuleLoadData { get; }

        public delegate* unmanaged<IntPtr*, IntPtr, byte*, int> ModuleGetFunction { get; }

        public delegate* unmanaged<IntPtr, int, int, int> FuncSetAttribute { get; }

        public delegate* unmanaged<IntPtr, uint, uint, uint, uint, uint, uint, uint, IntPtr, void**, void**, int> LaunchKernel { get; }

        public delegate* unmanaged<int, byte**, int> GetErrorString { get; }

        public delegate* unmanaged<int*, int*, int> GetVersion { get; }

        public delegate* unmanaged<IntPtr*, byte*, byte*, int, byte**, byte**, int> CreateProgram { get; }

        public delegate* unmanaged<IntPtr, int, byte**, int> CompileProgram { get; }

        public delegate* unmanaged<IntPtr, nuint*, int> GetProgramLogSize { get; }

        public delegate* unmanaged<IntPtr, byte*, int> GetProgramLog { get; }

        public delegate* unmanaged<IntPtr, nuint*, int> GetCubinSize { get; }

        public delegate* unmanaged<IntPtr, byte*, int> GetCubin { get; }

        public delegate* unmanaged<IntPtr*, int> DestroyProgram { get; }

        /// <summary>Makes the device's primary context (the one PyTorch uses) current on this thread.</summary>
        public void MakeCurrent(int device)
        {
            if (!_contexts.TryGetValue(device, out var context))
            {
                int dev;
                Check(DeviceGet(&dev, device), "cuDeviceGet");
                Check(PrimaryCtxRetain(&context, dev), "cuDevicePrimaryCtxRetain");
                _contexts[device] = context;
            }

            Check(CtxSetCurrent(context), "cuCtxSetCurrent");
        }

        public void Check(int result, string what)
        {
            if (result == 0)
            {
                return;
            }

            byte* text = null;
            string message = GetErrorString(result, &text) == 0 && text != null ? Marshal.PtrToStringUTF8((IntPtr)text) ?? "?" : "?";
            throw new InvalidOperationException($"{what} failed: CUDA error {result} ({message}).");
        }

        public void CheckNvrtc(int result, string what)
        {
            if (result != 0)
            {
                throw new InvalidOperationException($"{what} failed: NVRTC error {result}.");
            }
        }
    }
}
