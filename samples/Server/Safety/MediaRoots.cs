using Microsoft.Extensions.AI;
using VidKV.AI.Connector;

namespace VidKV.AI.Server;

/// <summary>
/// The folders whose files clients may name (<c>Server:MediaRoots</c>; none by default, and then no path is read).
/// A path is read only when, with every symbolic link resolved, it lies under a root and is a regular file (no pipes,
/// devices, sockets or folders) of at most the size limit; it is read off the model's thread with a time limit. Every
/// refusal of an existing or missing file gets the same message, so a reply never tells whether a file exists, and no
/// reply quotes a file's bytes or the server's paths.
/// </summary>
/// <remarks>Thread-safe. A local user who can write inside a root can swap a checked file for another between the
/// check and the open: the roots are meant for folders only the server's owner writes.</remarks>
public sealed class MediaRoots
{
    private const int MaxLinkHops = 40;
    private static readonly StringComparison PathComparison = OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;
    private readonly string[] _roots;

    /// <summary>Checks and resolves the roots.</summary>
    /// <param name="roots">Absolute folders; links in them are resolved once, here.</param>
    /// <param name="maxBytes">The largest file read, in bytes.</param>
    /// <param name="readTimeout">How long one read may take.</param>
    /// <param name="settingName">The setting that lists the roots, for messages.</param>
    /// <exception cref="ArgumentException">A root is not an absolute path to an existing folder, or a limit is not positive.</exception>
    public MediaRoots(IEnumerable<string> roots, long maxBytes, TimeSpan readTimeout, string settingName = "Server:MediaRoots")
    {
        SettingName = settingName;
        ArgumentNullException.ThrowIfNull(roots);
        if (maxBytes < 1)
        {
            throw new ArgumentException($"The media size limit is {maxBytes}; allowed: a positive byte count.", nameof(maxBytes));
        }

        if (readTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentException($"The media read timeout is {readTimeout}; allowed: a positive time span.", nameof(readTimeout));
        }

        var resolved = new List<string>();
        int index = 0;
        foreach (string root in roots)
        {
            if (string.IsNullOrWhiteSpace(root) || !Path.IsPathFullyQualified(root))
            {
                throw new ArgumentException($"{settingName}:{index} is '{root}'; allowed: an absolute path to a folder.", nameof(roots));
            }

            string canonical = Canonical(root);
            if (!Directory.Exists(canonical))
            {
                throw new ArgumentException($"{settingName}:{index} ('{root}') is not an existing folder.", nameof(roots));
            }

            resolved.Add(Path.TrimEndingDirectorySeparator(canonical));
            index++;
        }

        _roots = [.. resolved];
        MaxBytes = maxBytes;
        ReadTimeout = readTimeout;
    }

    /// <summary>No roots: paths are refused.</summary>
    public static MediaRoots None { get; } = new([], 1, TimeSpan.FromSeconds(1));

    /// <summary>The setting that lists the roots, for messages.</summary>
    public string SettingName { get; }

    /// <summary>Whether any path may be read.</summary>
    public bool Enabled => _roots.Length > 0;

    /// <summary>The resolved roots.</summary>
    public IReadOnlyList<string> Roots => _roots;

    /// <summary>The largest file read, in bytes.</summary>
    public long MaxBytes { get; }

    /// <summary>How long one read may take.</summary>
    public TimeSpan ReadTimeout { get; }

    /// <summary>Reads a file the client named, if the roots allow it.</summary>
    /// <param name="path">An absolute path, a <c>file:</c> URL, or a path relative to a root.</param>
    /// <param name="where">The request field, for messages (e.g. <c>messages[0].content[1].video_url.url</c>).</param>
    /// <param name="video">The client asked for a video: an image extension is read as a one-frame video.</param>
    /// <param name="cancellationToken">Cancels the read.</param>
    /// <returns>The bytes, with the media type of the name the client gave.</returns>
    /// <exception cref="ApiError">Paths are off, the file is not allowed or not found, too large, or too slow to read.</exception>
    public async Task<DataContent> ReadAsync(string path, string where, bool video, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (!Enabled)
        {
            throw ApiError.Invalid($"'{where}' names a file, and this server reads no files ({SettingName} is empty); send the media as a data URL (data:video/mp4;base64,...) or in a 'file' part's file_data.", where, "file_paths_disabled");
        }

        string requested = path.StartsWith("file:", StringComparison.OrdinalIgnoreCase) && Uri.TryCreate(path, UriKind.Absolute, out var uri) && uri.IsFile
            ? uri.LocalPath
            : path;
        string mediaType;
        try
        {
            mediaType = VidKVMedia.MediaTypeOf(requested);
        }
        catch (Exception e) when (e is NotSupportedException or ArgumentException)
        {
            throw ApiError.Invalid($"'{where}' names a file with the extension '{Path.GetExtension(requested)}', which is not a known video or image extension (.mp4, .webm, .mkv, .mov, .gif, .png, .jpg, ...).", where, "unsupported_media_type");
        }

        if (video && mediaType.StartsWith("image/", StringComparison.Ordinal))
        {
            mediaType = "video/" + mediaType["image/".Length..];
        }

        string file = Resolve(requested) ?? throw NotAllowed(where);
        long length;
        try
        {
            length = new FileInfo(file).Length;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw NotAllowed(where);
        }

        if (length > MaxBytes)
        {
            throw ApiError.Invalid($"'{where}' names a file of {length:N0} bytes; allowed: at most {MaxBytes:N0} (VidKV:MaxMediaBytes).", where, "file_too_large");
        }

        // Off the caller's thread with a time limit: should the file become a pipe between the check and the open, the
        // open blocks a pool thread, never the model's thread, and the request fails when the limit passes.
        var read = Task.Run(() => ReadAll(file, cancellationToken), CancellationToken.None);
        try
        {
            byte[] bytes = await read.WaitAsync(ReadTimeout, cancellationToken).ConfigureAwait(false);
            return new DataContent(bytes, mediaType) { Name = Path.GetFileName(requested) };
        }
        catch (TimeoutException)
        {
            throw ApiError.Invalid($"'{where}' names a file that could not be read within {ReadTimeout.TotalSeconds:0.#} s (the media read timeout).", where, "file_read_timeout");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw NotAllowed(where);
        }
    }

    /// <summary>The file a path names when it is allowed: every link resolved, under a root, a regular file; else <see langword="null"/>.</summary>
    public string? Resolve(string path)
    {
        if (!Enabled || string.IsNullOrEmpty(path) || path.Contains('\0', StringComparison.Ordinal))
        {
            return null;
        }

        IEnumerable<string> candidates = Path.IsPathFullyQualified(path) ? [path] : _roots.Select(r => Path.Combine(r, path));
        foreach (string candidate in candidates)
        {
            string canonical;
            try
            {
                canonical = Canonical(candidate);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
            {
                continue;
            }

            if (_roots.Any(root => canonical.StartsWith(root + Path.DirectorySeparatorChar, PathComparison)) && FileKind.IsRegularFile(canonical))
            {
                return canonical;
            }
        }

        return null;
    }

    /// <summary>The path with every symbolic link resolved, component by component (as <c>realpath</c> does); missing components stay as they are.</summary>
    /// <exception cref="IOException">More than 40 links (a loop).</exception>
    public static string Canonical(string path)
    {
        string full = Path.GetFullPath(path);
        string root = Path.GetPathRoot(full)!;
        var pending = new Stack<string>(full[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse());
        string current = root;
        int hops = 0;
        while (pending.Count > 0)
        {
            string part = pending.Pop();
            if (part == ".")
            {
                continue;
            }

            if (part == "..")
            {
                current = Path.GetDirectoryName(current) ?? root;
                continue;
            }

            string next = Path.Join(current, part);
            string? target = new FileInfo(next).LinkTarget;
            if (target is null)
            {
                current = next;
                continue;
            }

            if (++hops > MaxLinkHops)
            {
                throw new IOException("Too many levels of symbolic links.");
            }

            if (Path.IsPathFullyQualified(target))
            {
                current = Path.GetPathRoot(target)!;
                target = target[current.Length..];
            }

            foreach (string t in target.Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries).Reverse())
            {
                pending.Push(t);
            }
        }

        return current;
    }

    private ApiError NotAllowed(string where) => ApiError.Invalid(
        $"'{where}' names a file that is not allowed or not found: this server reads only regular files under its media roots ({SettingName}).",
        where,
        "file_not_allowed");

    private byte[] ReadAll(string file, CancellationToken cancellationToken)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);
        long length = stream.Length;
        if (length > MaxBytes)
        {
            throw new IOException("grew past the limit");
        }

        var bytes = new byte[length];
        int offset = 0;
        while (offset < bytes.Length)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = stream.Read(bytes, offset, Math.Min(bytes.Length - offset, 1 << 20));
            if (n == 0)
            {
                return bytes[..offset];
            }

            offset += n;
        }

        return bytes;
    }
}
