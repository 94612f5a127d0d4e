namespace VidKV.AI.Backend.Text;

/// <summary>Who speaks a turn of a conversation; rendered in lower case by the chat template.</summary>
public enum ChatRole
{
    /// <summary>Instructions for the model ("system").</summary>
    System,

    /// <summary>The person asking ("user").</summary>
    User,

    /// <summary>The model ("assistant").</summary>
    Assistant,
}
