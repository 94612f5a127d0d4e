namespace VidKV.AI.Training.Synthetic;

/// <summary>The kinds of question the synthetic video QA generator asks.</summary>
public enum QuestionFamily
{
    /// <summary>The colour, shape or size of one object.</summary>
    Attribute,

    /// <summary>How many objects appear in the video.</summary>
    Counting,

    /// <summary>Which way one object moves.</summary>
    MotionDirection,

    /// <summary>Which of two objects appeared first.</summary>
    TemporalOrder,

    /// <summary>A needle in a long video: what appeared briefly, or in which third of the video it appeared.</summary>
    Needle,
}
