// An OpenAI-compatible server over the built-in VideoLLM (or a LLaVA-OneVision, Qwen2.5-VL or Qwen2-VL checkpoint folder, VidKV:ModelPath):
//   dotnet run -c Release --project samples/Server
//   curl -N http://127.0.0.1:5080/v1/chat/completions -H 'Content-Type: application/json' -d '{"model":"vidkv-tiny","stream":true,
//     "messages":[{"role":"user","content":[{"type":"video_url","video_url":{"url":"data:video/mp4;base64,..."}},{"type":"text","text":"What moves?"}]}]}'
// Files by path only under Server:MediaRoots (none by default); Server:ApiKey, Server:AllowedHosts: see the README's threat model.
using VidKV.AI.Server;

await ServerApp.Create(args).RunAsync();
