namespace VidKV.AI.Training.Synthetic;

/// <summary>The exact question template of a sample; each belongs to one <see cref="QuestionFamily"/>.</summary>
public enum QuestionForm
{
    /// <summary>"What colour is the {shape}?" (attribute); answered with a colour.</summary>
    AttributeColor,

    /// <summary>"What shape is the {colour} object?" (attribute); answered with a shape.</summary>
    AttributeShape,

    /// <summary>"What size is the {colour} {shape}?" (attribute); answered with "small", "medium" or "large".</summary>
    AttributeSize,

    /// <summary>"How many objects appear in the video?" (counting); answered with a number word.</summary>
    Counting,

    /// <summary>"Which way does the {colour} {shape} move?" (motion direction); answered with a direction.</summary>
    MotionDirection,

    /// <summary>"Which appeared first, the {colour} {shape} or the {colour} {shape}?" (temporal order); answered with an object.</summary>
    TemporalOrder,

    /// <summary>"What appeared briefly?" (needle); answered with an object.</summary>
    NeedleWhat,

    /// <summary>"When did the {colour} {shape} appear?" (needle); answered with "start", "middle" or "end".</summary>
    NeedleWhen,
}
