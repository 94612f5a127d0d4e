using System.Buffers.Binary;
using System.Text;

namespace VidKV.AI.Quantization.Native;

/// <summary>
/// A minimal reader (and one-flag writer) of 64-bit little-endian ELF shared objects: enough to read
/// the dependencies, the symbol versions a library needs and defines, and to mark a needed version weak.
/// </summary>
internal sealed class ElfImage
{
    private const uint ShtDynamic = 6;
    private const uint ShtDynsym = 11;
    private const uint ShtGnuVerdef = 0x6ffffffd;
    private const uint ShtGnuVerneed = 0x6ffffffe;
    private const uint ShtGnuVersym = 0x6fffffff;
    private const ushort VerFlagWeak = 0x2;

    private readonly byte[] _bytes;
    private readonly List<Section> _sections = new();

    private readonly record struct Section(uint Type, long Offset, long Size, uint Link, uint Info, long EntrySize);

    /// <summary>A version requirement (<c>.gnu.version_r</c> auxiliary entry) and where its flags live.</summary>
    internal readonly record struct VersionNeed(string File, string Version, ushort Index, ushort Flags, long FlagsOffset)
    {
        public bool IsWeak => (Flags & VerFlagWeak) != 0;
    }

    public ElfImage(byte[] bytes, string name)
    {
        _bytes = bytes;
        if (bytes.Length < 64 || bytes[0] != 0x7f || bytes[1] != (byte)'E' || bytes[2] != (byte)'L' || bytes[3] != (byte)'F')
        {
            throw new InvalidDataException($"'{name}' is not an ELF file.");
        }

        if (bytes[4] != 2 || bytes[5] != 1)
        {
            throw new InvalidDataException($"'{name}' is not a 64-bit little-endian ELF file; only those are supported.");
        }

        long shoff = (long)U64(0x28);
        int shentsize = U16(0x3A);
        int shnum = U16(0x3C);
        if (shoff <= 0 || shentsize < 64 || shoff + (long)shnum * shentsize > bytes.Length)
        {
            throw new InvalidDataException($"'{name}' has no readable section header table.");
        }

        for (int i = 0; i < shnum; i++)
        {
            long h = shoff + (long)i * shentsize;
            _sections.Add(new Section(U32(h + 4), (long)U64(h + 24), (long)U64(h + 32), U32(h + 40), U32(h + 44), (long)U64(h + 56)));
        }
    }

    public byte[] Bytes => _bytes;

    /// <summary>The DT_NEEDED entries: the shared objects this one links against.</summary>
    public IReadOnlyList<string> Needed()
    {
        var result = new List<string>();
        foreach (var s in _sections.Where(s => s.Type == ShtDynamic))
        {
            var strtab = _sections[(int)s.Link];
            for (long e = s.Offset; e + 16 <= s.Offset + s.Size; e += 16)
            {
                long tag = (long)U64(e);
                if (tag == 0)
                {
                    break;
                }

                if (tag == 1)
                {
                    result.Add(Str(strtab, (long)U64(e + 8)));
                }
            }
        }

        return result;
    }

    /// <summary>Every version this object requires from its dependencies.</summary>
    public IReadOnlyList<VersionNeed> VersionNeeds()
    {
        var result = new List<VersionNeed>();
        foreach (var s in _sections.Where(s => s.Type == ShtGnuVerneed))
        {
            var strtab = _sections[(int)s.Link];
            long vn = s.Offset;
            for (uint i = 0; i < s.Info; i++)
            {
                string file = Str(strtab, U32(vn + 4));
                long aux = vn + U32(vn + 8);
                int count = U16(vn + 2);
                for (int j = 0; j < count; j++)
                {
                    result.Add(new VersionNeed(file, Str(strtab, U32(aux + 8)), U16(aux + 6), U16(aux + 4), aux + 4));
                    aux += U32(aux + 12);
                }

                uint next = U32(vn + 12);
                if (next == 0)
                {
                    break;
                }

                vn += next;
            }
        }

        return result;
    }

    /// <summary>Every version name this object defines (<c>.gnu.version_d</c>), e.g. GLIBCXX_3.4.30.</summary>
    public IReadOnlySet<string> VersionDefinitions()
    {
        var result = new HashSet<string>(StringComparer.Ordinal);
        foreach (var s in _sections.Where(s => s.Type == ShtGnuVerdef))
        {
            var strtab = _sections[(int)s.Link];
            long vd = s.Offset;
            for (uint i = 0; i < s.Info; i++)
            {
                long aux = vd + U32(vd + 12);
                result.Add(Str(strtab, U32(aux)));
                uint next = U32(vd + 16);
                if (next == 0)
                {
                    break;
                }

                vd += next;
            }
        }

        return result;
    }

    /// <summary>Names of the dynamic symbols bound to the version with the given index.</summary>
    public IReadOnlyList<string> SymbolsOfVersion(ushort versionIndex)
    {
        var result = new List<string>();
        var versym = _sections.FirstOrDefault(s => s.Type == ShtGnuVersym);
        var dynsym = _sections.FirstOrDefault(s => s.Type == ShtDynsym);
        if (versym.Size == 0 || dynsym.Size == 0)
        {
            return result;
        }

        var strtab = _sections[(int)dynsym.Link];
        long count = dynsym.Size / 24;
        for (long i = 0; i < count; i++)
        {
            if ((U16(versym.Offset + (i * 2)) & 0x7fff) == versionIndex)
            {
                result.Add(Str(strtab, U32(dynsym.Offset + (i * 24))));
            }
        }

        return result;
    }

    /// <summary>Marks one version requirement weak, so that the loader accepts a library that lacks it.</summary>
    public void MarkWeak(VersionNeed need)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(_bytes.AsSpan((int)need.FlagsOffset), (ushort)(need.Flags | VerFlagWeak));
    }

    private string Str(Section strtab, long offset)
    {
        long start = strtab.Offset + offset;
        long end = start;
        while (end < _bytes.Length && _bytes[end] != 0)
        {
            end++;
        }

        return Encoding.ASCII.GetString(_bytes, (int)start, (int)(end - start));
    }

    private ushort U16(long at) => BinaryPrimitives.ReadUInt16LittleEndian(_bytes.AsSpan((int)at));

    private uint U32(long at) => BinaryPrimitives.ReadUInt32LittleEndian(_bytes.AsSpan((int)at));

    private ulong U64(long at) => BinaryPrimitives.ReadUInt64LittleEndian(_bytes.AsSpan((int)at));
}
