using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace VidKV.AI.Backend.Media;

/// <summary>
/// Opens a file for reading only when it is a regular file (symbolic links followed), without ever blocking on a named
/// pipe or a device: on Linux the file is opened non-blocking and its type is read from the open handle (no window
/// between the check and the open), then blocking mode is restored. Elsewhere the file is opened normally.
/// </summary>
internal static partial class RegularFile
{
    private const int OpenReadOnly = 0, OpenNonBlocking = 0x800, OpenCloseOnExec = 0x80000;
    private const int FcntlGetFlags = 3, FcntlSetFlags = 4;
    private const int AtEmptyPath = 0x1000;
    private const uint StatxType = 0x1;
    private const int FileTypeMask = 0xF000, RegularType = 0x8000, DirectoryType = 0x4000;
    private const int ErrorNotFound = 2, ErrorNotDirectory = 20, ErrorLoop = 40, ErrorAccess = 13, ErrorNameTooLong = 36;

    /// <summary>Opens <paramref name="path"/> for reading; <paramref name="what"/> names it in messages ("Media file 'x.mp4'").</summary>
    /// <exception cref="FileNotFoundException">Nothing is there (or a link points nowhere).</exception>
    /// <exception cref="UnauthorizedAccessException">It may not be read.</exception>
    /// <exception cref="InvalidDataException">It is a folder, a named pipe, a device or a socket: not a regular file.</exception>
    public static SafeFileHandle Open(string path, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (!OperatingSystem.IsLinux())
        {
            if (Directory.Exists(path))
            {
                throw new InvalidDataException($"{what} is a folder, not a regular file.");
            }

            return File.Exists(path)
                ? File.OpenHandle(path, FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess)
                : throw new FileNotFoundException($"{what} does not exist.", path);
        }

        int fd = NativeOpen(path, OpenReadOnly | OpenNonBlocking | OpenCloseOnExec);
        if (fd < 0)
        {
            int error = Marshal.GetLastPInvokeError();
            throw error switch
            {
                ErrorNotFound or ErrorNotDirectory or ErrorLoop or ErrorNameTooLong => new FileNotFoundException($"{what} does not exist.", path),
                ErrorAccess => new UnauthorizedAccessException($"{what} may not be read (permission denied)."),
                _ => new IOException($"{what} cannot be opened ({Marshal.GetPInvokeErrorMessage(error)})."),
            };
        }

        var handle = new SafeFileHandle((IntPtr)fd, ownsHandle: true);
        try
        {
            int type = FileType(fd);
            if (type != RegularType)
            {
                string kind = type switch
                {
                    DirectoryType => "a folder",
                    0x1000 => "a named pipe",
                    0x2000 => "a character device",
                    0x6000 => "a block device",
                    0xC000 => "a socket",
                    _ => "not a regular file",
                };
                throw new InvalidDataException($"{what} is {kind}; only regular files are read.");
            }

            int flags = Fcntl(fd, FcntlGetFlags, 0);
            if (flags >= 0)
            {
                _ = Fcntl(fd, FcntlSetFlags, flags & ~OpenNonBlocking);
            }

            return handle;
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    /// <summary>The file type bits (S_IFMT) of an open descriptor; regular when statx is unavailable (the open itself did not block).</summary>
    private static unsafe int FileType(int fd)
    {
        byte* buffer = stackalloc byte[256];
        if (Statx(fd, string.Empty, AtEmptyPath, StatxType, buffer) != 0)
        {
            return RegularType;
        }

        ushort mode = *(ushort*)(buffer + 28); // struct statx: stx_mode at offset 28 on every architecture
        return mode & FileTypeMask;
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int NativeOpen(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fcntl", SetLastError = true)]
    private static partial int Fcntl(int fd, int command, int argument);

    [LibraryImport("libc", EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static unsafe partial int Statx(int directoryFd, string path, int flags, uint mask, byte* buffer);
}
