#!/usr/bin/env python3
"""Writes the golden fixtures for the LLaVA-OneVision backend tests.

Runs where transformers (5.x), tokenizers and torch are installed (the GPU machine; it needs no GPU and no
network): builds a tiny random-weight LLaVA-OneVision checkpoint and a tiny byte-level BPE tokenizer, runs
the reference implementation on fixed inputs, and writes everything under OUT_DIR:

  model/          save_pretrained's layout and key names: config, single-file fp32 safetensors, tied embeddings,
                  tokenizer, preprocessor configs, chat template
  model-alt/      the same weights under the Hub's key names (vision_tower.vision_model.*), bf16, sharded
                  with model.safetensors.index.json, lm_head written out, an older config.json style
                  (image_token_index, torch_dtype, rope_theta)
  reference.safetensors  inputs and outputs: frames, pixel values, vision features, merged embeddings,
                  logits, per-layer hidden states, greedy tokens, cached-decode logits, image case
  reference.json  prompts, chat-template renderings, token counts, greedy margins
  tokenizer-cases.json   texts and the ids Hugging Face tokenizers gives them

Usage: python3 tools/make_llava_fixtures.py OUT_DIR
"""
import json
import math
import os
import shutil
import sys

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
import transformers
from transformers import (DynamicCache, LlavaOnevisionConfig, LlavaOnevisionForConditionalGeneration,
                          LlavaOnevisionProcessor, PreTrainedTokenizerFast, Qwen2Config, SiglipVisionConfig)

OUT = sys.argv[1]
SEED = int(os.environ.get("FIXTURE_SEED", "0"))
torch.manual_seed(SEED)
np.random.seed(SEED)

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + ' '}}"
    "{# Render all images first #}{% for content in message['content'] | selectattr('type', 'equalto', 'image') %}{{ '<image>' }}{% endfor %}"
    "{# Render all video then #}{% for content in message['content'] | selectattr('type', 'equalto', 'video') %}{{ '<video>' }}{% endfor %}"
    "{# Render all text next #}{% if message['role'] != 'assistant' %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{{ '\\n' + content['text'] }}{% endfor %}"
    "{% else %}{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}{{ '\\n' + content['text'] }}{% endgeneration %}{% endfor %}{% endif %}"
    "{{'<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")

CORPUS = [
    "What happens in this video? A red ball rolls to the left, then a blue square appears.",
    "Describe the image. The cat sits on the mat; the dog sleeps near the door.",
    "How many objects are there? There are three objects: two circles and one triangle.",
    "Which appeared first, the green star or the yellow cross? The green star appeared first.",
    "It's 10:45 and we're done. They'll say I'd rather not, but you've seen it.",
    "Numbers 0123456789, symbols !?.,;:()[]{}<>+-*/=_~#@$%^&|\\\"'`",
    "Multiple   spaces\tand tabs\nnew lines\r\nand more.",
    "Ünïcödé, naïve café, 日本語のテキスト, 中文文本, 한국어, emoji 🙂🎬",
] * 20

# ---------------------------------------------------------------------------------------------------------------
# Tokenizer: a Qwen2-style byte-level BPE (same normalizer, pre-tokenizer, decoder), trained on a small corpus.
tok = Tokenizer(models.BPE())
tok.normalizer = normalizers.NFC()
tok.pre_tokenizer = pre_tokenizers.Sequence([
    pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
    pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=480, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                    show_progress=False))
tok.add_special_tokens(SPECIALS)
fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                               bos_token=None, unk_token=None, model_max_length=4096)
fast.chat_template = CHAT_TEMPLATE
ids = {t: fast.convert_tokens_to_ids(t) for t in SPECIALS}
vocab = len(fast)
print("vocab", vocab, "specials", ids, flush=True)

# ---------------------------------------------------------------------------------------------------------------
# Model: tiny LLaVA-OneVision. Vision 70x70 with 14-pixel patches = 5x5 patches, pooled to 3x3 per frame (as
# 27x27 -> 14x14 in the real 384-pixel models: an odd grid, ceil). Text: head dim 64, GQA 4 query / 2 KV heads.
vision = SiglipVisionConfig(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                            image_size=70, patch_size=14, layer_norm_eps=1e-6)
text = Qwen2Config(vocab_size=vocab, hidden_size=256, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                   num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-6, tie_word_embeddings=True,
                   rope_theta=1000000.0, initializer_range=0.08, bos_token_id=ids["<|endoftext|>"],
                   eos_token_id=ids["<|im_end|>"], use_sliding_window=False)
cfg = LlavaOnevisionConfig(vision_config=vision, text_config=text, image_token_id=ids["<image>"],
                           video_token_id=ids["<video>"], vision_feature_layer=-1, vision_feature_select_strategy="full",
                           vision_aspect_ratio="anyres_max_9", projector_hidden_act="gelu", multimodal_projector_bias=True,
                           image_grid_pinpoints=[[70, 70], [70, 140], [140, 70], [140, 140], [140, 210], [210, 140]],
                           tie_word_embeddings=True)
model = LlavaOnevisionForConditionalGeneration._from_config(cfg, attn_implementation="eager", torch_dtype=torch.float32)
model.eval()
with torch.no_grad():
    # Larger than the default init so that logits are far from uniform and greedy choices are well separated.
    for name, p in model.named_parameters():
        if p.dim() >= 2:
            p.normal_(0, 0.08)
        elif "norm" in name and name.endswith("weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        else:
            p.normal_(0, 0.05)
print("parameters", sum(p.numel() for p in model.parameters()), flush=True)

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
from transformers import LlavaOnevisionImageProcessor, LlavaOnevisionVideoProcessor  # noqa: E402
image_processor = LlavaOnevisionImageProcessor(size={"height": 70, "width": 70}, image_mean=MEAN, image_std=STD,
                                               image_grid_pinpoints=cfg.image_grid_pinpoints)
video_processor = LlavaOnevisionVideoProcessor(size={"height": 70, "width": 70}, image_mean=MEAN, image_std=STD)
processor = LlavaOnevisionProcessor(image_processor=image_processor, tokenizer=fast, video_processor=video_processor,
                                    chat_template=CHAT_TEMPLATE, num_image_tokens=25, vision_feature_select_strategy="full",
                                    vision_aspect_ratio="anyres_max_9")

# ---------------------------------------------------------------------------------------------------------------
# Checkpoint folders.
main_dir = os.path.join(OUT, "model")
model.save_pretrained(main_dir)
processor.save_pretrained(main_dir)
with open(os.path.join(main_dir, "config.json")) as f:
    main_config = json.load(f)

saved = load_file(os.path.join(main_dir, "model.safetensors"))
module = {k: v for k, v in model.state_dict().items()}
groups = lambda names: sorted({".".join(n.split(".")[:3]) for n in names})
print("saved keys:", groups(saved), len(saved), flush=True)
print("module keys:", groups(module), len(module), flush=True)
meta_keys = {"saved_example": sorted(saved)[:3], "module_example": sorted(module)[:3]}



def hub_name(name):
    """The names of the checkpoints on the Hub (llava-hf/llava-onevision-*): vision_tower.vision_model.*."""
    if name.startswith("vision_tower.") and not name.startswith("vision_tower.vision_model."):
        return "vision_tower.vision_model." + name[len("vision_tower."):]
    return name


# The Hub's naming, bf16, sharded, lm_head written out, an older config.json style.
alt = {hub_name(k): v.to(torch.bfloat16).contiguous() for k, v in saved.items()}
alt["language_model.lm_head.weight"] = alt["language_model.model.embed_tokens.weight"].clone()
alt_dir = os.path.join(OUT, "model-alt")
os.makedirs(alt_dir, exist_ok=True)
names = sorted(alt)
shards = [names[i::3] for i in range(3)]
index = {"metadata": {"total_size": sum(v.numel() * 2 for v in alt.values())}, "weight_map": {}}
for i, shard in enumerate(shards):
    file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    save_file({n: alt[n] for n in shard}, os.path.join(alt_dir, file), metadata={"format": "pt"})
    index["weight_map"].update({n: file for n in shard})
with open(os.path.join(alt_dir, "model.safetensors.index.json"), "w") as f:
    json.dump(index, f, indent=2)
old = json.loads(json.dumps(main_config))
# save_pretrained writes image_token_index; the other spelling found in the wild is image_token_id.
for index_key, id_key in (("image_token_index", "image_token_id"), ("video_token_index", "video_token_id")):
    if index_key in old:
        old[id_key] = old.pop(index_key)
old.pop("dtype", None)
old["torch_dtype"] = "bfloat16"
old["tie_word_embeddings"] = False
tc = old["text_config"]
tc.pop("dtype", None)
tc["torch_dtype"] = "bfloat16"
tc["tie_word_embeddings"] = False
rp = tc.pop("rope_parameters", None)
tc["rope_theta"] = (rp or {}).get("rope_theta", 1000000.0)
tc.pop("layer_types", None)
with open(os.path.join(alt_dir, "config.json"), "w") as f:
    json.dump(old, f, indent=2)
for name in os.listdir(main_dir):
    if name not in ("config.json", "model.safetensors", "generation_config.json"):
        shutil.copy(os.path.join(main_dir, name), os.path.join(alt_dir, name))

# ---------------------------------------------------------------------------------------------------------------
# Inputs.
rng = np.random.default_rng(SEED)
frames = rng.integers(0, 256, size=(4, 90, 120, 3), dtype=np.uint8)          # resized by the processor
frames_exact = rng.integers(0, 256, size=(4, 70, 70, 3), dtype=np.uint8)     # already the model's size
image = rng.integers(0, 256, size=(100, 150, 3), dtype=np.uint8)

conv_video = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens in this video?"}]}]
conv_image = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}]
conv_multi = [
    {"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
    {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "How many objects are there?"}]},
    {"role": "assistant", "content": [{"type": "text", "text": "There are three objects."}]},
    {"role": "user", "content": [{"type": "text", "text": "Which appeared first?"}]}]
renderings = {
    "video": processor.apply_chat_template(conv_video, add_generation_prompt=True),
    "image": processor.apply_chat_template(conv_image, add_generation_prompt=True),
    "multi_turn": processor.apply_chat_template(conv_multi, add_generation_prompt=True),
    "multi_turn_no_prompt": processor.apply_chat_template(conv_multi, add_generation_prompt=False),
}
print("renderings", json.dumps(renderings), flush=True)

video_inputs = processor(text=renderings["video"], videos=[frames], return_tensors="pt")
exact_video = video_processor(videos=[frames_exact], return_tensors="pt")
image_inputs = processor(text=renderings["image"], images=[image], return_tensors="pt")
print("video inputs", {k: tuple(v.shape) for k, v in video_inputs.items()}, flush=True)
print("image inputs", {k: tuple(v.shape) for k, v in image_inputs.items()}, flush=True)

tensors = {}
meta = {"keys": meta_keys, "transformers": transformers.__version__, "torch": torch.__version__, "seed": SEED, "special_ids": ids,
        "renderings": renderings, "mean": MEAN, "std": STD}

with torch.no_grad():
    lm = model.model.language_model
    captured = {}

    def grab_embeds(module, args, kwargs):
        captured["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()

    layer_outputs = []

    def grab_layer(module, args, output):
        layer_outputs.append((output[0] if isinstance(output, tuple) else output).detach().clone())

    hooks = [lm.register_forward_pre_hook(grab_embeds, with_kwargs=True)]
    hooks += [layer.register_forward_hook(grab_layer) for layer in lm.layers]
    hooks.append(lm.norm.register_forward_hook(lambda m, a, o: captured.__setitem__("final_norm", o.detach().clone())))

    out = model(**video_inputs)
    tensors["video.input_ids"] = video_inputs["input_ids"]
    tensors["video.pixel_values"] = video_inputs["pixel_values_videos"].float()
    tensors["video.frames"] = torch.from_numpy(frames)
    tensors["video.frames_exact"] = torch.from_numpy(frames_exact)
    tensors["video.pixel_values_exact"] = exact_video["pixel_values_videos"].float()
    tensors["video.inputs_embeds"] = captured["inputs_embeds"]
    for i, h in enumerate(layer_outputs):
        tensors[f"video.layer_output.{i}"] = h
    tensors["video.final_norm"] = captured["final_norm"]
    tensors["video.logits"] = out.logits.float()

    pv = video_inputs["pixel_values_videos"].flatten(0, 1)
    vt = model.model.vision_tower(pv, output_hidden_states=True)
    tensors["video.vision_hidden"] = vt.hidden_states[-1]
    projected = model.model.multi_modal_projector(vt.hidden_states[-1])
    tensors["video.projected"] = projected
    tensors["video.pooled"] = model.model.apply_pooling(projected)

    layer_outputs.clear()
    captured.clear()
    out_img = model(**image_inputs)
    tensors["image.input_ids"] = image_inputs["input_ids"]
    tensors["image.pixel_values"] = image_inputs["pixel_values"].float()
    tensors["image.image_sizes"] = image_inputs["image_sizes"]
    tensors["image.raw"] = torch.from_numpy(image)
    tensors["image.inputs_embeds"] = captured["inputs_embeds"]
    tensors["image.logits"] = out_img.logits.float()
    for h in hooks:
        h.remove()

    gen = model.generate(**video_inputs, max_new_tokens=10, do_sample=False, eos_token_id=None, pad_token_id=ids["<|endoftext|>"])
    greedy = gen[0, video_inputs["input_ids"].shape[1]:]
    tensors["video.greedy_tokens"] = greedy

    cache = DynamicCache()
    first = model(**video_inputs, past_key_values=cache, use_cache=True)
    step_logits = [first.logits[0, -1]]
    margins = []
    for t in greedy[:-1]:
        step = model(input_ids=t.view(1, 1), past_key_values=cache, use_cache=True)
        step_logits.append(step.logits[0, -1])
    for l in step_logits:
        top = torch.topk(l, 2).values
        margins.append(float(top[0] - top[1]))
    tensors["video.decode_logits"] = torch.stack(step_logits).float()
    # Consistency of the reference itself: the first decode logits equal the full forward's last position.
    meta["cached_vs_full_max_abs"] = float((first.logits[0, -1] - out.logits[0, -1]).abs().max())
    meta["greedy_margins"] = margins
    meta["greedy_text"] = fast.decode(greedy)
    print("greedy", greedy.tolist(), "margins", [round(m, 4) for m in margins], flush=True)

save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "reference.safetensors"))
meta["video_tokens"] = int((video_inputs["input_ids"] == ids["<video>"]).sum())
meta["image_tokens"] = int((image_inputs["input_ids"] == ids["<image>"]).sum())
with open(os.path.join(OUT, "reference.json"), "w") as f:
    json.dump(meta, f, indent=2, ensure_ascii=False)

# ---------------------------------------------------------------------------------------------------------------
# Tokenizer cases.
texts = ["Hello world", "What happens in this video?", "  leading and trailing  ", "It's 10:45, we're done!",
         "naïve café Ünïcödé", "日本語のテキスト 中文 한국어", "emoji 🙂🎬 and symbols <>{}[]", "tabs\tand\nnew lines\r\n\n",
         "numbers 1234567 and 3.14159", "<|im_start|>user <video>\nWhat is this?<|im_end|><|im_start|>assistant\n",
         "<image><image>text<video>", "Unseen words: xylophone quixotic zebra", "", " ", "a" * 50,
         renderings["multi_turn"]]
cases = [{"text": t, "ids": fast.encode(t, add_special_tokens=False)} for t in texts]
for c in cases:
    c["decoded"] = fast.decode(c["ids"], skip_special_tokens=False)
with open(os.path.join(OUT, "tokenizer-cases.json"), "w") as f:
    json.dump(cases, f, indent=2, ensure_ascii=False)

for root, _, files in os.walk(OUT):
    for name in sorted(files):
        path = os.path.join(root, name)
        print(f"{os.path.getsize(path):>10} {os.path.relpath(path, OUT)}")
