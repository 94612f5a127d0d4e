using VidKV.AI.Quantization.Native;

namespace VidKV.AI.Quantization.Tests.Native;

public sealed class ElfImageTests
{
    private static string LibTorchSharp() => TorchRuntime.FindLibTorchSharp(new List<string>());

    [Fact]
    public void LibTorchSharp_NeedsGlibcxx3432_OnlyForTheIostreamMarker()
    {
        var image = new ElfImage(File.ReadAllBytes(LibTorchSharp()), "libLibTorchSharp.so");

        var need = Assert.Single(image.VersionNeeds(), n => n.Version == "GLIBCXX_3.4.32");
        Assert.Equal("libstdc++.so.6", need.File);
        Assert.False(need.IsWeak);
        Assert.Equal(new[] { "_ZSt21ios_base_library_initv" }, image.SymbolsOfVersion(need.Index));
        Assert.Contains("libtorch.so", image.Needed());
        Assert.Contains("libc10.so", image.Needed());
    }

    [Fact]
    public void MarkWeak_SetsOnlyThatRequirementsWeakFlag()
    {
        var original = File.ReadAllBytes(LibTorchSharp());
        var image = new ElfImage((byte[])original.Clone(), "copy");
        var need = image.VersionNeeds().Single(n => n.Version == "GLIBCXX_3.4.32");

        image.MarkWeak(need);

        var reread = new ElfImage(image.Bytes, "patched");
        Assert.True(reread.VersionNeeds().Single(n => n.Version == "GLIBCXX_3.4.32").IsWeak);
        Assert.All(reread.VersionNeeds().Where(n => n.Version != "GLIBCXX_3.4.32"), n => Assert.Equal(
            image.VersionNeeds().Single(o => o.File == n.File && o.Version == n.Version).Flags & ~2, n.Flags & ~2));
        Assert.Equal(1, original.Zip(image.Bytes).Count(p => p.First != p.Second));
    }

    [Fact]
    public void SystemLibStdCxx_DefinesVersions()
    {
        var path = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }.FirstOrDefault(File.Exists);
        Assert.True(path is not null, "no system libstdc++.so.6 found in the usual folders");
        var defined = new ElfImage(File.ReadAllBytes(path!), path!).VersionDefinitions();
        Assert.Contains("GLIBCXX_3.4", defined);
        Assert.Contains("CXXABI_1.3", defined);
    }

    [Fact]
    public void NotAnElf_IsRejectedWithItsName()
    {
        var ex = Assert.Throws<InvalidDataException>(() => new ElfImage(new byte[100], "notes.txt"));
        Assert.Contains("notes.txt", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LibTorchFolderThatDoesNotExist_FailsListingWhatWasTried()
    {
        var steps = new List<string>();
        var ex = Assert.Throws<TorchRuntimeException>(() => TorchRuntime.ResolveLibTorchDirectory("/no/such/torch/lib", steps));
        Assert.Contains("/no/such/torch/lib", ex.Message, StringComparison.Ordinal);
        Assert.Contains(TorchRuntime.LibTorchVariable, ex.Message, StringComparison.Ordinal);
        Assert.Contains("Tried:", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadedLibrary_IsTheOriginalOrAPatchedCopyAsTheSystemRequires()
    {
        TorchRuntime.EnsureLoaded();
        var libstdcxx = new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6" }.First(File.Exists);
        bool systemHasIt = new ElfImage(File.ReadAllBytes(libstdcxx), libstdcxx).VersionDefinitions().Contains("GLIBCXX_3.4.32");

        if (systemHasIt)
        {
            Assert.Contains("(unmodified)", TorchRuntime.Description, StringComparison.Ordinal);
        }
        else
        {
            Assert.Contains("GLIBCXX_3.4.32 marked weak", TorchRuntime.Description, StringComparison.Ordinal);
        }
    }
}
