using VidKV.AI.Training.Synthetic;
using VidKV.AI.Training;

namespace VidKV.AI.Connector.Tests.Server;

/// <summary>A scene of the built-in model's synthetic task as MP4 bytes, with its question and the frames the model reads.</summary>
internal sealed record SyntheticClip(byte[] Mp4, string Question, string Answer, int Frames)
{
    private static readonly Lazy<SyntheticClip> Motion = new(() => Make(2026, QuestionFamily.MotionDirection));

    /// <summary>A motion-direction scene (made once per run).</summary>
    public static SyntheticClip MotionScene => Motion.Value;

    public string DataUrl => "data:video/mp4;base64," + Convert.ToBase64String(Mp4);

    private static SyntheticClip Make(int seed, QuestionFamily family)
    {
        var sample = SceneGenerator.Generate(seed, new SceneOptions { Family = family, MinFrames = 32, MaxFrames = 32 });
        string path = Path.Combine(TinyModel.TempFolder, $"synthetic-{seed}-{family}.mp4");
        SampleWriter.WriteMp4(sample, path);
        return new SyntheticClip(File.ReadAllBytes(path), sample.Question, sample.Answer, VidKvTinyRecipe.FramesFor(sample));
    }
}
