using System.Runtime.InteropServices;

namespace VidKV.AI.Server;

/// <summary>
/// Whether a path is a regular file, asked without opening it (opening a named pipe blocks until a writer comes; a
/// device never ends). Linux: <c>statx</c>, whose layout is the same on every architecture. Elsewhere: the file
/// attributes (Windows marks devices; other systems are refused unless the attributes say a plain file).
/// </summary>
internal static partial class FileKind
{
    private const int AtFdCwd = -100;
    private const int AtSymlinkNoFollow = 0x100;
    private const uint StatxType = 0x1;
    private const int StatxModeOffset = 28;
    private const int StatxSize = 256;
    private const int TypeMask = 0xF000;
    private const int RegularFile = 0x8000;

    /// <summary>True when <paramref name="path"/> names a regular file itself (a symbolic link is not one: resolve it first).</summary>
    public static bool IsRegularFile(string path)
    {
        if (OperatingSystem.IsLinux())
        {
            return LinuxMode(path) is { } mode && (mode & TypeMask) == RegularFile;
        }

        try
        {
            var attributes = File.GetAttributes(path);
            return (attributes & (FileAttributes.Directory | FileAttributes.Device | FileAttributes.ReparsePoint)) == 0
                && (OperatingSystem.IsWindows() || File.Exists(path));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            return false;
        }
    }

    private static unsafe int? LinuxMode(string path)
    {
        byte* buffer = stackalloc byte[StatxSize];
        try
        {
            if (Statx(AtFdCwd, path, AtSymlinkNoFollow, StatxType, buffer) != 0)
            {
                return null;
            }
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null; // no statx: refuse rather than guess
        }

        return *(ushort*)(buffer + StatxModeOffset);
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int directory, string path, int flags, uint mask, byte* buffer);
}
