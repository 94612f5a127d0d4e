namespace VidKV.AI.Training.Synthetic;

/// <summary>
/// Builds one scene and its question for one family. Every question is made true and unambiguous by how the scene is
/// built: objects have distinct colours, the shape asked about is unique, the two objects of a temporal question appear
/// on different frames, only the needle is brief, and no two objects ever overlap.
/// </summary>
internal sealed class SceneBuilder
{
    // Empty space kept between objects' bounding circles and between an object and the frame's edge.
    private const double Gap = 0.03;
    private const double EdgeMargin = 0.02;
    private const int PlacementAttempts = 64;

    private static readonly ShapeKind[] AllShapes = Enum.GetValues<ShapeKind>();
    private static readonly ObjectSize[] AllSizes = Enum.GetValues<ObjectSize>();
    private static readonly MotionDirection[] Moving = [MotionDirection.Left, MotionDirection.Right, MotionDirection.Up, MotionDirection.Down];

    private readonly SceneRandom _random;
    private readonly SceneOptions _options;
    private readonly List<SceneObject> _objects = [];
    private readonly Queue<SceneColor> _colors;
    private int _frameCount;

    public SceneBuilder(SceneRandom random, SceneOptions options)
    {
        _random = random;
        _options = options;
        var colors = ScenePalette.Colors.ToList();
        _random.Shuffle(colors);
        _colors = new Queue<SceneColor>(colors);
    }

    /// <summary>The shortest visible span of an ordinary (non-needle) object: a third of the video, at least 4 frames.</summary>
    private int MinVisible => Math.Max(Math.Min(_frameCount, 4), (_frameCount + 2) / 3);

    /// <summary>Builds the scene and question; null when objects could not be placed without overlap (the caller retries).</summary>
    public VideoQaSample? TryBuild(int seed, QuestionFamily family)
    {
        var question = family switch
        {
            QuestionFamily.Attribute => BuildAttribute(),
            QuestionFamily.Counting => BuildCounting(),
            QuestionFamily.MotionDirection => BuildMotion(),
            QuestionFamily.TemporalOrder => BuildTemporal(),
            _ => BuildNeedle(),
        };
        if (question is not { } q)
        {
            return null;
        }

        // Drawing order carries no meaning; shuffle it so the subject is not always first.
        _random.Shuffle(_objects);
        int grey = _random.Next(8, 28);
        var background = new RgbColor((byte)(grey + _random.Next(0, 8)), (byte)(grey + _random.Next(0, 8)), (byte)(grey + _random.Next(0, 12)));
        var scene = new SceneSpec(_frameCount, background, _options.NoiseLevel, (int)_random.NextUInt64(), _objects);
        IReadOnlyList<int> subjects = [.. q.Subjects.Select(s => _objects.FindIndex(o => o.Color == s.Color))];
        return new VideoQaSample
        {
            Seed = seed,
            Family = family,
            Form = q.Form,
            Question = q.Text,
            Answer = q.Answer,
            Choices = q.Choices,
            Scene = scene,
            Width = _options.Width,
            Height = _options.Height,
            SubjectIndices = subjects,
        };
    }

    private Question? BuildAttribute()
    {
        _frameCount = FrameCount(_options.MinFrames);
        int n = _random.Next(1, _options.MaxObjects);
        var form = _random.Pick<QuestionForm>([QuestionForm.AttributeColor, QuestionForm.AttributeShape, QuestionForm.AttributeSize]);
        var shape = _random.Pick(AllShapes);
        var (appear, disappear) = OrdinaryInterval();
        if (Place(shape, RandomSize(), RandomMotion(0.5), 0.2, appear, disappear) is not { } subject)
        {
            return null;
        }

        // "What colour is the {shape}?" is only asked when no other object has that shape.
        ShapeKind[] otherShapes = form == QuestionForm.AttributeColor ? [.. AllShapes.Where(s => s != shape)] : AllShapes;
        if (!PlaceOthers(n - 1, otherShapes))
        {
            return null;
        }

        return form switch
        {
            QuestionForm.AttributeColor => new Question(
                form, $"What colour is the {SceneVocabulary.Name(shape)}?", SceneVocabulary.Name(subject.Color), SceneVocabulary.Colors, [subject]),
            QuestionForm.AttributeShape => new Question(
                form, $"What shape is the {SceneVocabulary.Name(subject.Color)} object?", SceneVocabulary.Name(shape), SceneVocabulary.Shapes, [subject]),
            _ => new Question(
                form, $"What size is the {subject.Description}?", SceneVocabulary.Name(subject.Size), SceneVocabulary.Sizes, [subject]),
        };
    }

    private Question? BuildCounting()
    {
        _frameCount = FrameCount(_options.MinFrames);
        int n = _random.Next(1, _options.MaxObjects);
        if (!PlaceOthers(n, AllShapes))
        {
            return null;
        }

        return new Question(
            QuestionForm.Counting,
            "How many objects appear in the video?",
            SceneVocabulary.CountWord(n),
            [.. SceneVocabulary.Counts.Take(_options.MaxObjects)],
            [.. _objects]);
    }

    private Question? BuildMotion()
    {
        _frameCount = FrameCount(_options.MinFrames);
        int n = _random.Next(1, _options.MaxObjects);
        var (appear, disappear) = OrdinaryInterval();
        var direction = _random.Pick(Moving);
        if (Place(_random.Pick(AllShapes), RandomSize(), direction, 0.35, appear, disappear) is not { } subject || !PlaceOthers(n - 1, AllShapes))
        {
            return null;
        }

        return new Question(
            QuestionForm.MotionDirection, $"Which way does the {subject.Description} move?", SceneVocabulary.Name(direction), SceneVocabulary.Directions, [subject]);
    }

    private Question? BuildTemporal()
    {
        _frameCount = FrameCount(_options.MinFrames);
        int n = _random.Next(2, _options.MaxObjects);
        int minVisible = MinVisible;
        int gap = Math.Max(1, _frameCount / 8);
        int firstAppear = _random.Next(0, _frameCount - minVisible - gap);
        int secondAppear = _random.Next(firstAppear + gap, _frameCount - minVisible);
        var firstShape = _random.Pick(AllShapes);
        var secondShape = _random.Pick<ShapeKind>([.. AllShapes.Where(s => s != firstShape)]);
        var first = Place(firstShape, RandomSize(), RandomMotion(0.5), 0.2, firstAppear, firstAppear + _random.Next(minVisible, _frameCount - firstAppear));
        if (first is null)
        {
            return null;
        }

        var second = Place(secondShape, RandomSize(), RandomMotion(0.5), 0.2, secondAppear, secondAppear + _random.Next(minVisible, _frameCount - secondAppear));
        if (second is null || !PlaceOthers(n - 2, AllShapes))
        {
            return null;
        }

        var (a, b) = _random.Chance(0.5) ? (first, second) : (second, first);
        return new Question(
            QuestionForm.TemporalOrder,
            $"Which appeared first, the {a.Description} or the {b.Description}?",
            first.Description,
            [a.Description, b.Description],
            [a, b]);
    }

    private Question? BuildNeedle()
    {
        _frameCount = FrameCount(Math.Max(_options.MinFrames, _options.NeedleMinFrames));
        int n = _random.Next(2, _options.MaxObjects);

        // The needle lies inside one third, kept off the third's borders by a quarter of the slack.
        int third = _random.Next(0, 2);
        int lo = ((third * _frameCount) + 2) / 3;
        int hi = (((third + 1) * _frameCount) + 2) / 3;
        int duration = _random.Next(_options.NeedleMinVisibleFrames, _options.NeedleMaxVisibleFrames);
        int margin = (hi - lo - duration) / 4;
        int start = _random.Next(lo + margin, hi - duration - margin);
        if (Place(_random.Pick(AllShapes), RandomSize(), MotionDirection.None, 0, start, start + duration) is not { } needle)
        {
            return null;
        }

        // Every other object stays for at least half the video.
        for (int i = 1; i < n; i++)
        {
            var (appear, disappear) = (0, _frameCount);
            if (_random.Chance(0.3))
            {
                int length = _random.Next((_frameCount + 1) / 2, _frameCount);
                appear = _random.Next(0, _frameCount - length);
                disappear = appear + length;
            }

            if (Place(_random.Pick(AllShapes), RandomSize(), RandomMotion(0.5), 0.2, appear, disappear) is null)
            {
                return null;
            }
        }

        return _random.Chance(0.5)
            ? new Question(QuestionForm.NeedleWhat, "What appeared briefly?", needle.Description, SceneVocabulary.Objects, [needle])
            : new Question(QuestionForm.NeedleWhen, $"When did the {needle.Description} appear?", SceneVocabulary.Times[third], SceneVocabulary.Times, [needle]);
    }

    /// <summary>
    /// A video length between <paramref name="min"/> and MaxFrames, uniform over octaves ([8, 15], [16, 31], ...; the
    /// last one runs to MaxFrames, e.g. [128, 256]) then uniform inside the octave, so that short and long videos are
    /// equally common. Integer arithmetic only.
    /// </summary>
    private int FrameCount(int min)
    {
        int max = _options.MaxFrames;
        var octaves = new List<(int Lo, int Hi)>();
        long lo = min;
        while ((4 * lo) - 1 <= max)
        {
            octaves.Add(((int)lo, (int)((2 * lo) - 1)));
            lo *= 2;
        }

        octaves.Add(((int)lo, max));
        var (a, b) = _random.Pick(octaves);
        return _random.Next(a, b);
    }

    /// <summary>Visible for the whole video (55 %), or for a random span of at least <see cref="MinVisible"/> frames.</summary>
    private (int Appear, int Disappear) OrdinaryInterval()
    {
        if (_random.Chance(0.55))
        {
            return (0, _frameCount);
        }

        int length = _random.Next(MinVisible, _frameCount);
        int appear = _random.Next(0, _frameCount - length);
        return (appear, appear + length);
    }

    private bool PlaceOthers(int count, IReadOnlyList<ShapeKind> shapes)
    {
        for (int i = 0; i < count; i++)
        {
            var (appear, disappear) = OrdinaryInterval();
            if (Place(_random.Pick(shapes), RandomSize(), RandomMotion(0.5), 0.2, appear, disappear) is null)
            {
                return false;
            }
        }

        return true;
    }

    private ObjectSize RandomSize() => _random.Pick(AllSizes);

    private MotionDirection RandomMotion(double staticChance) => _random.Chance(staticChance) ? MotionDirection.None : _random.Pick(Moving);

    /// <summary>
    /// Places an object of the next unused colour where it stays inside the frame and clear of every placed object on
    /// every frame both are visible; moving objects travel at least <paramref name="minTravel"/> of the frame.
    /// </summary>
    private SceneObject? Place(ShapeKind shape, ObjectSize size, MotionDirection motion, double minTravel, int appear, int disappear)
    {
        var color = _colors.Peek();
        double r = ShapeGeometry.Radius(size);
        double lo = r + EdgeMargin, hi = 1 - r - EdgeMargin;
        int steps = disappear - appear - 1;
        if (steps < 1)
        {
            motion = MotionDirection.None;
        }

        for (int attempt = 0; attempt < PlacementAttempts; attempt++)
        {
            double travel = motion == MotionDirection.None ? 0 : _random.NextDouble(minTravel, hi - lo);
            double along = motion switch
            {
                MotionDirection.Right or MotionDirection.Down => _random.NextDouble(lo, hi - travel),
                MotionDirection.Left or MotionDirection.Up => _random.NextDouble(lo + travel, hi),
                _ => _random.NextDouble(lo, hi),
            };
            double across = _random.NextDouble(lo, hi);
            var (x, y) = motion is MotionDirection.Up or MotionDirection.Down ? (across, along) : (along, across);
            var candidate = new SceneObject(shape, color, size, x, y, motion, motion == MotionDirection.None ? 0 : travel / steps, appear, disappear);
            if (_objects.All(o => Clear(o, candidate)))
            {
                _objects.Add(candidate);
                _colors.Dequeue();
                return candidate;
            }
        }

        return null;
    }

    private static bool Clear(SceneObject a, SceneObject b)
    {
        double min = a.Radius + b.Radius + Gap;
        int from = Math.Max(a.AppearFrame, b.AppearFrame), to = Math.Min(a.DisappearFrame, b.DisappearFrame);
        for (int f = from; f < to; f++)
        {
            var (ax, ay) = a.PositionAt(f);
            var (bx, by) = b.PositionAt(f);
            double dx = ax - bx, dy = ay - by;
            if ((dx * dx) + (dy * dy) < min * min)
            {
                return false;
            }
        }

        return true;
    }

    private readonly record struct Question(QuestionForm Form, string Text, string Answer, IReadOnlyList<string> Choices, SceneObject[] Subjects);
}
