namespace VidKV.AI.Backend.Text;

/// <summary>One message of a conversation: a role and its parts (text, images, videos).</summary>
/// <remarks>
/// The parts list is kept as given, not copied; equality of two turns compares the lists by reference.
/// </remarks>
public sealed record ChatTurn
{
    /// <summary>Initializes a turn.</summary>
    /// <param name="role">Who speaks.</param>
    /// <param name="parts">The parts, in order; it may be empty, and may not hold null.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="role"/> is not a defined <see cref="ChatRole"/>.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="parts"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="parts"/> holds a null part.</exception>
    public ChatTurn(ChatRole role, IReadOnlyList<ChatPart> parts)
    {
        if (!Enum.IsDefined(role))
        {
            throw new ArgumentOutOfRangeException(nameof(role), role, "Role must be System, User or Assistant.");
        }

        ArgumentNullException.ThrowIfNull(parts);
        for (int i = 0; i < parts.Count; i++)
        {
            if (parts[i] is null)
            {
                throw new ArgumentException($"Part {i} is null.", nameof(parts));
            }
        }

        Role = role;
        Parts = parts;
    }

    /// <summary>Initializes a turn that holds one text part.</summary>
    /// <param name="role">Who speaks.</param>
    /// <param name="text">The text.</param>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="role"/> is not a defined <see cref="ChatRole"/>.</exception>
    /// <exception cref="ArgumentNullException"><paramref name="text"/> is null.</exception>
    public ChatTurn(ChatRole role, string text)
        : this(role, [new TextPart(text)])
    {
    }

    /// <summary>Gets who speaks.</summary>
    public ChatRole Role { get; }

    /// <summary>Gets the parts, in the order given.</summary>
    public IReadOnlyList<ChatPart> Parts { get; }
}
