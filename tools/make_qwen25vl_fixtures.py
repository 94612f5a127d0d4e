#!/usr/bin/env python3
"""Writes the golden fixtures for the Qwen2.5-VL and Qwen2-VL backend tests (tests/Backend.Tests/Models).

Runs where transformers (5.x), tokenizers and torch are installed (the GPU machine; it needs no GPU and no
network): builds tiny random-weight Qwen2.5-VL and Qwen2-VL checkpoints of the real architectures and a tiny
byte-level BPE tokenizer with the Qwen special tokens, runs the reference implementation in float32 on fixed
inputs (images and videos of odd sizes and frame counts), and writes under OUT_DIR:

  qwen25vl/model/        save_pretrained's layout (config.json with model_type qwen2_5_vl, safetensors, tied
                         embeddings), tokenizer, preprocessor and video preprocessor configs, chat template
  qwen25vl/model-alt/    the same weights in bf16 under the Hub's key names (visual.*, model.layers.*, lm_head.weight,
                         which transformers 5.17 also writes), two shards with an index, the Hub's flat config.json
                         (rope_scaling with mrope_section, torch_dtype)
  qwen25vl/reference.safetensors  per case: raw pixels, pixel_values and grid_thw, vision block outputs and
                         features, input ids, inputs_embeds, the 3-D position ids the language model received,
                         each decoder layer's output, logits, greedy tokens with and without the cache and the
                         logits of each generated step
  qwen25vl/reference.json        renderings of the chat template, ids, second_per_grid_ts, greedy margins,
                         smart_resize for many sizes, frame sampling indices
  qwen2vl/...            the same for Qwen2-VL (LayerNorm + quick-GELU vision blocks, no windows, untied lm_head);
                         its inputs (raw pixels, pixel values) equal Qwen2.5-VL's and are left out of its reference file
  sources.tar.gz         transformers' own files for both models, to read the reference behaviour

Usage: python3 tools/make_qwen25vl_fixtures.py OUT_DIR
Then copy OUT_DIR/qwen25vl/* to tests/Backend.Tests/Fixtures/qwen25vl-tiny/ and OUT_DIR/qwen2vl/* to its qwen2vl/.
The committed fixtures were made by this script on the GPU machine (CPU, float32) with transformers 5.17.0 and torch 2.11;
the last step (shrink) was applied to them afterwards by an equivalent script without torch.
"""
import inspect
import io
import json
import math
import os
import shutil
import sys
import tarfile
import traceback

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
import transformers
from transformers import PreTrainedTokenizerFast

OUT = sys.argv[1]
SEED = int(os.environ.get("FIXTURE_SEED", "0"))
os.makedirs(OUT, exist_ok=True)
print("transformers", transformers.__version__, "torch", torch.__version__, flush=True)

QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
            "<|video_pad|>"]
# Qwen2.5-VL-Instruct's chat_template (as on the Hub), without the add_vision_id branch's configurability removed.
CHAT_TEMPLATE = (
    "{% set image_count = namespace(value=0) %}{% set video_count = namespace(value=0) %}{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}"
    "<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}"
    "<|vision_start|><|video_pad|><|vision_end|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CORPUS = [
    "What happens in this video? A red ball rolls to the left, then a blue square appears.",
    "Describe the image. The cat sits on the mat; the dog sleeps near the door.",
    "You are a helpful assistant. How many objects are there? There are three objects.",
    "Which appeared first, the green star or the yellow cross? The green star appeared first.",
    "It's 10:45 and we're done. They'll say I'd rather not, but you've seen it.",
    "Numbers 0123456789, symbols !?.,;:()[]{}<>+-*/=_~#@$%^&|\\\"'`",
    "system user assistant Picture Video Compare the picture and the video.",
] * 20
MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 30
VIDEO_MIN_PIXELS, VIDEO_MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 16


def build_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    tok.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=420, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    tok.add_special_tokens(SPECIALS)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   bos_token=None, unk_token=None, model_max_length=4096)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def randomize(model):
    with torch.no_grad():
        # Larger than the default init so that logits are far from uniform and greedy choices are well separated.
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.08)
            elif ("norm" in name or "ln_q" in name) and name.endswith("weight"):
                p.copy_(1 + 0.1 * torch.randn_like(p))
            else:
                p.normal_(0, 0.05)


def mrope_of(text_config):
    for attr in ("rope_parameters", "rope_scaling"):
        value = getattr(text_config, attr, None)
        if isinstance(value, dict) and "mrope_section" in value:
            return list(value["mrope_section"])
    return None


def make_config(kind, ids, vocab):
    text = dict(vocab_size=vocab, hidden_size=128, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=4096, rms_norm_eps=1e-6, hidden_act="silu",
                bos_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], use_sliding_window=False,
                tie_word_embeddings=(kind == "qwen25vl"))
    tokens = dict(image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
                  vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"],
                  tie_word_embeddings=(kind == "qwen25vl"))
    if kind == "qwen25vl":
        from transformers import Qwen2_5_VLConfig as Config
        vision = dict(depth=3, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=128, in_channels=3,
                      patch_size=14, spatial_merge_size=2, temporal_patch_size=2, tokens_per_second=2, window_size=56,
                      fullatt_block_indexes=[1], hidden_act="silu")
    else:
        from transformers import Qwen2VLConfig as Config
        vision = dict(depth=2, embed_dim=32, hidden_size=128, mlp_ratio=2, num_heads=2, in_channels=3, patch_size=14,
                      spatial_merge_size=2, temporal_patch_size=2, hidden_act="quick_gelu")
    attempts = [
        dict(rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 6, 6]}),
        dict(rope_theta=1000000.0, rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]}),
    ]
    errors = []
    for extra in attempts:
        try:
            cfg = Config(text_config={**text, **extra}, vision_config=vision, **tokens)
            if mrope_of(cfg.text_config) == [4, 6, 6]:
                return cfg
            errors.append(f"{extra}: mrope {mrope_of(cfg.text_config)}")
        except Exception as e:  # noqa: BLE001
            errors.append(f"{extra}: {e!r}")
    raise RuntimeError(f"could not configure mrope_section: {errors}")


def find(module, *paths):
    for path in paths:
        obj = module
        try:
            for part in path.split("."):
                obj = getattr(obj, part)
            return obj
        except AttributeError:
            continue
    raise AttributeError(f"none of {paths}")


def make_family(kind):
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    out_dir = os.path.join(OUT, kind)
    os.makedirs(out_dir, exist_ok=True)
    fast = build_tokenizer()
    ids = {t: fast.convert_tokens_to_ids(t) for t in SPECIALS}
    vocab = len(fast)
    cfg = make_config(kind, ids, vocab)
    if kind == "qwen25vl":
        from transformers import Qwen2_5_VLForConditionalGeneration as Model, Qwen2_5_VLProcessor as Processor
    else:
        from transformers import Qwen2VLForConditionalGeneration as Model, Qwen2VLProcessor as Processor
    from transformers import Qwen2VLImageProcessor, Qwen2VLVideoProcessor
    model = Model._from_config(cfg, attn_implementation="eager", torch_dtype=torch.float32)
    model.eval()
    randomize(model)
    print(kind, "parameters", sum(p.numel() for p in model.parameters()), flush=True)

    image_processor = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS, image_mean=MEAN, image_std=STD,
                                            patch_size=14, temporal_patch_size=2, merge_size=2)
    video_kwargs = dict(min_pixels=VIDEO_MIN_PIXELS, max_pixels=VIDEO_MAX_PIXELS, image_mean=MEAN, image_std=STD,
                        patch_size=14, temporal_patch_size=2, merge_size=2, fps=2.0, min_frames=4, max_frames=40)
    video_processor = Qwen2VLVideoProcessor(**video_kwargs)
    processor = Processor(image_processor=image_processor, tokenizer=fast, video_processor=video_processor,
                          chat_template=CHAT_TEMPLATE)

    main_dir = os.path.join(out_dir, "model")
    model.save_pretrained(main_dir)
    processor.save_pretrained(main_dir)
    # Greedy decoding below runs the whole length: no end-of-sequence stop (the saved generation config keeps it).
    model.generation_config.eos_token_id = None
    saved = load_file(os.path.join(main_dir, "model.safetensors"))
    meta = {"transformers": transformers.__version__, "torch": torch.__version__, "seed": SEED, "special_ids": ids,
            "vocab": vocab, "saved_keys": sorted(saved), "module_keys": sorted(model.state_dict()),
            "image_processor": type(image_processor).__name__, "video_processor": type(video_processor).__name__,
            "files": sorted(os.listdir(main_dir))}
    print(kind, "saved key groups", sorted({".".join(k.split(".")[:3]) for k in saved}), flush=True)

    if kind == "qwen25vl":
        # The Hub's names (visual.*, model.*, lm_head.weight), two shards, older config spellings.
        def hub_name(name):
            if name.startswith("model.visual."):
                return name[len("model."):]
            if name.startswith("model.language_model."):
                return "model." + name[len("model.language_model."):]
            return name
        alt = {hub_name(k): v.contiguous() for k, v in saved.items()}
        if "lm_head.weight" not in alt:
            alt["lm_head.weight"] = alt["model.embed_tokens.weight"].clone()
        alt_dir = os.path.join(out_dir, "model-alt")
        os.makedirs(alt_dir, exist_ok=True)
        names = sorted(alt)
        shards = [names[i::2] for i in range(2)]
        index = {"metadata": {"total_size": sum(v.numel() * 4 for v in alt.values())}, "weight_map": {}}
        for i, shard in enumerate(shards):
            file = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
            save_file({n: alt[n] for n in shard}, os.path.join(alt_dir, file), metadata={"format": "pt"})
            index["weight_map"].update({n: file for n in shard})
        with open(os.path.join(alt_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
        with open(os.path.join(main_dir, "config.json")) as f:
            old = json.load(f)
        # The Hub's config.json (Qwen/Qwen2.5-VL-3B-Instruct): flat text settings, rope_scaling with mrope_section.
        text = old.pop("text_config", {})
        for key, value in text.items():
            if key not in ("model_type", "architectures", "rope_parameters", "dtype", "layer_types"):
                old.setdefault(key, value)
        rope = text.get("rope_parameters") or text.get("rope_scaling") or {}
        old["rope_theta"] = rope.get("rope_theta", text.get("rope_theta", 1000000.0))
        old["rope_scaling"] = {"type": "mrope", "mrope_section": rope.get("mrope_section", [4, 6, 6])}
        old.pop("dtype", None)
        old["torch_dtype"] = "float32"
        old["tie_word_embeddings"] = False
        vc = old["vision_config"]
        vc.pop("dtype", None)
        with open(os.path.join(alt_dir, "config.json"), "w") as f:
            json.dump(old, f, indent=2)
        for name in os.listdir(main_dir):
            if name not in ("config.json", "model.safetensors", "generation_config.json"):
                shutil.copy(os.path.join(main_dir, name), os.path.join(alt_dir, name))

    # Inputs: odd sizes and frame counts.
    video = rng.integers(0, 256, size=(5, 90, 120, 3), dtype=np.uint8)     # 5 frames: padded to 6 (3 temporal patches)
    image = rng.integers(0, 256, size=(100, 150, 3), dtype=np.uint8)       # -> 112x140 (8x10 patches)
    big = rng.integers(0, 256, size=(230, 170, 3), dtype=np.uint8)         # over max_pixels -> 168x112
    clip = rng.integers(0, 256, size=(3, 50, 70, 3), dtype=np.uint8)      # under min_pixels; 3 frames
    cases = {
        "video": ([{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "What happens in this video?"}]}],
                  [], [video], 1.5),
        "image": ([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Describe the image."}]}],
                  [image], [], None),
        "mixed": ([{"role": "system", "content": [{"type": "text", "text": "You are a helpful assistant."}]},
                   {"role": "user", "content": [{"type": "text", "text": "How many objects are there?"}, {"type": "image"}]},
                   {"role": "assistant", "content": [{"type": "text", "text": "There are three objects."}]},
                   {"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which appeared first?"}]}],
                  [big], [clip], 2.0),
    }
    tensors = {}
    meta["renderings"] = {}
    meta["cases"] = {}
    lm = find(model, "model.language_model", "model")
    visual = find(model, "model.visual", "visual")
    for name, (conversation, images, videos, fps) in cases.items():
        text = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        meta["renderings"][name] = text
        kwargs = {}
        if images:
            kwargs["images"] = images
        if videos:
            kwargs["videos"] = videos
        info = {"fps_asked": fps}
        inputs = None
        if videos and fps is not None:
            try:
                inputs = processor(text=[text], return_tensors="pt", fps=fps, **kwargs)
                info["fps_passed"] = True
            except Exception as e:  # noqa: BLE001
                info["fps_error"] = repr(e)
        if inputs is None:
            inputs = processor(text=[text], return_tensors="pt", **kwargs)
        info["keys"] = {k: list(v.shape) if hasattr(v, "shape") else v for k, v in inputs.items()}
        if "second_per_grid_ts" in inputs:
            spg = inputs["second_per_grid_ts"]
            info["second_per_grid_ts"] = [float(x) for x in (spg.tolist() if hasattr(spg, "tolist") else spg)]
        print(kind, name, info, flush=True)
        p = f"{name}."
        tensors[p + "input_ids"] = inputs["input_ids"]
        for i, im in enumerate(images):
            tensors[p + f"image{i}.raw"] = torch.from_numpy(im)
        for i, v in enumerate(videos):
            tensors[p + f"video{i}.raw"] = torch.from_numpy(v)
        for key in ("pixel_values", "image_grid_thw", "pixel_values_videos", "video_grid_thw"):
            if key in inputs:
                tensors[p + key] = inputs[key].float() if key.startswith("pixel") else inputs[key]

        with torch.no_grad():
            # Vision tower alone, block by block.
            for key, grid_key in (("pixel_values", "image_grid_thw"), ("pixel_values_videos", "video_grid_thw")):
                if key not in inputs:
                    continue
                blocks = []
                hooks = [b.register_forward_hook(lambda m, a, o: blocks.append((o[0] if isinstance(o, tuple) else o).detach().clone()))
                         for b in visual.blocks]
                hooks.append(visual.patch_embed.register_forward_hook(lambda m, a, o: tensors.__setitem__(p + key + ".patch_embed", o.detach().clone())))
                feats = visual(inputs[key], grid_thw=inputs[grid_key])
                if not torch.is_tensor(feats):
                    feats = getattr(feats, "pooler_output", None) if getattr(feats, "pooler_output", None) is not None else feats[0]
                for h in hooks:
                    h.remove()
                for i, b in enumerate(blocks):
                    tensors[p + key + f".block{i}"] = b
                tensors[p + key + ".features"] = feats

            captured = {}

            def grab(module, args, kw):
                if "inputs_embeds" in kw and kw["inputs_embeds"] is not None:
                    captured["inputs_embeds"] = kw["inputs_embeds"].detach().clone()
                if kw.get("position_ids") is not None:
                    captured["position_ids"] = kw["position_ids"].detach().clone()

            layer_outputs = []
            hooks = [lm.register_forward_pre_hook(grab, with_kwargs=True)]
            hooks += [layer.register_forward_hook(lambda m, a, o: layer_outputs.append((o[0] if isinstance(o, tuple) else o).detach().clone()))
                      for layer in lm.layers]
            hooks.append(lm.norm.register_forward_hook(lambda m, a, o: captured.__setitem__("final_norm", o.detach().clone())))
            out = model(**inputs)
            for h in hooks:
                h.remove()
            tensors[p + "inputs_embeds"] = captured["inputs_embeds"]
            if "position_ids" in captured:
                tensors[p + "position_ids"] = captured["position_ids"]
            for i, h in enumerate(layer_outputs):
                tensors[p + f"layer_output.{i}"] = h
            tensors[p + "final_norm"] = captured["final_norm"]
            tensors[p + "logits"] = out.logits.float()
            if getattr(out, "rope_deltas", None) is not None:
                tensors[p + "rope_deltas"] = out.rope_deltas
            try:
                fn = find(model, "model.get_rope_index", "get_rope_index")
                sig = inspect.signature(fn)
                kw = {k: inputs[k] for k in ("mm_token_type_ids", "image_grid_thw", "video_grid_thw", "second_per_grid_ts", "attention_mask") if k in inputs and k in sig.parameters}
                if "second_per_grid_ts" in kw and not torch.is_tensor(kw["second_per_grid_ts"]):
                    kw["second_per_grid_ts"] = torch.tensor(kw["second_per_grid_ts"])
                pos, deltas = fn(inputs["input_ids"], **kw)
                tensors[p + "rope_index"] = pos
                tensors[p + "rope_index_deltas"] = torch.as_tensor(deltas)
                info["rope_index_signature"] = str(sig)
            except Exception as e:  # noqa: BLE001
                info["rope_index_error"] = repr(e)

            n_new = 8
            for use_cache in (True, False):
                gen = model.generate(**inputs, max_new_tokens=n_new, do_sample=False, use_cache=use_cache,
                                     pad_token_id=ids["<|endoftext|>"], return_dict_in_generate=True, output_logits=True)
                new = gen.sequences[0, inputs["input_ids"].shape[1]:]
                suffix = "cached" if use_cache else "uncached"
                tensors[p + f"greedy_{suffix}"] = new
                step_logits = torch.stack([l[0] for l in gen.logits]).float()
                tensors[p + f"decode_logits_{suffix}"] = step_logits
                top = torch.topk(step_logits, 2, dim=-1).values
                info[f"greedy_margins_{suffix}"] = [float(x) for x in (top[:, 0] - top[:, 1])]
                info[f"greedy_{suffix}"] = new.tolist()
            info["cached_vs_uncached_logits_max_abs"] = float((tensors[p + "decode_logits_cached"] - tensors[p + "decode_logits_uncached"]).abs().max())
            info["first_step_vs_forward_max_abs"] = float((tensors[p + "decode_logits_cached"][0] - out.logits[0, -1]).abs().max())
            print(kind, name, "greedy", info["greedy_cached"], info["greedy_uncached"], "margins",
                  [round(m, 4) for m in info["greedy_margins_cached"]], flush=True)
        meta["cases"][name] = info

    # smart_resize for many sizes (factor 28), and the video processor's frame sampling.
    try:
        from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize
        sizes = [(100, 150), (230, 170), (50, 70), (28, 28), (27, 29), (42, 42), (70, 70), (14, 300), (1080, 1920),
                 (720, 1280), (480, 640), (2000, 3000), (333, 777), (56, 5000), (99, 101)]
        resize_cases = []
        for (h, w) in sizes:
            for lo, hi in ((MIN_PIXELS, MAX_PIXELS), (56 * 56, 28 * 28 * 1280), (128 * 28 * 28, 28 * 28 * 768)):
                try:
                    rh, rw = smart_resize(h, w, factor=28, min_pixels=lo, max_pixels=hi)
                    resize_cases.append({"height": h, "width": w, "min_pixels": lo, "max_pixels": hi, "out": [rh, rw]})
                except Exception as e:  # noqa: BLE001
                    resize_cases.append({"height": h, "width": w, "min_pixels": lo, "max_pixels": hi, "error": str(e)})
        meta["smart_resize"] = resize_cases
    except Exception as e:  # noqa: BLE001
        meta["smart_resize_error"] = traceback.format_exc()
    sampling = []
    try:
        from transformers.video_utils import VideoMetadata
        sig = inspect.signature(video_processor.sample_frames)
        meta["sample_frames_signature"] = str(sig)
        for total, rate in ((100, 30.0), (37, 24.0), (10, 25.0), (2000, 30.0), (7, 2.0), (301, 29.97)):
            entry = {"total": total, "video_fps": rate}
            try:
                md = VideoMetadata(total_num_frames=total, fps=rate, duration=total / rate, width=64, height=64)
                if "video" in sig.parameters:
                    res = video_processor.sample_frames(torch.arange(total).view(total, 1, 1, 1), metadata=md,
                                                        **{k: v for k, v in dict(frame_factor=2, min_frames=4, max_frames=40, fps=2.0).items() if k in sig.parameters})
                    entry["indices"] = res.view(-1).tolist()
                else:
                    res = video_processor.sample_frames(md, **{k: v for k, v in dict(fps=2.0).items() if k in sig.parameters})
                    entry["indices"] = [int(x) for x in (res.tolist() if hasattr(res, "tolist") else res)]
            except Exception as e:  # noqa: BLE001
                entry["error"] = repr(e)
            sampling.append(entry)
    except Exception as e:  # noqa: BLE001
        meta["sampling_error"] = traceback.format_exc()
    meta["sampling"] = sampling

    tokenizer_cases = ["Hello world", "What happens in this video?", "<|im_start|>user\n<|vision_start|><|video_pad|><|video_pad|><|vision_end|>Hi<|im_end|>\n",
                       "It's 10:45, we're done!", "naïve café 日本語 🙂"]
    meta["tokenizer_cases"] = [{"text": t, "ids": fast.encode(t, add_special_tokens=False)} for t in tokenizer_cases]
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(out_dir, "reference.safetensors"))
    with open(os.path.join(out_dir, "reference.json"), "w") as f:
        json.dump(meta, f, indent=2, ensure_ascii=False)


for family in ("qwen25vl", "qwen2vl"):
    try:
        make_family(family)
    except Exception:  # noqa: BLE001
        traceback.print_exc()
        print("FAILED", family, flush=True)


def shrink():
    """Keeps the fixtures small: Qwen2-VL's inputs equal Qwen2.5-VL's; the Hub-style checkpoint is stored in bf16."""
    a = load_file(os.path.join(OUT, "qwen25vl", "reference.safetensors"))
    path = os.path.join(OUT, "qwen2vl", "reference.safetensors")
    b = load_file(path)
    shared = [k for k in b if (k.endswith(".raw") or k.endswith("pixel_values") or k.endswith("pixel_values_videos"))
              and k in a and torch.equal(a[k], b[k])]
    save_file({k: v.contiguous() for k, v in b.items() if k not in shared}, path)
    alt = os.path.join(OUT, "qwen25vl", "model-alt")
    for name in os.listdir(alt):
        if name.endswith(".safetensors"):
            tensors = load_file(os.path.join(alt, name))
            save_file({k: v.to(torch.bfloat16).contiguous() for k, v in tensors.items()}, os.path.join(alt, name), metadata={"format": "pt"})
    for name, edit in (("config.json", lambda c: c.update(torch_dtype="bfloat16")),
                       ("model.safetensors.index.json", lambda c: c["metadata"].update(total_size=c["metadata"]["total_size"] // 2))):
        with open(os.path.join(alt, name)) as f:
            data = json.load(f)
        edit(data)
        with open(os.path.join(alt, name), "w") as f:
            json.dump(data, f, indent=2)


try:
    shrink()
except Exception:  # noqa: BLE001
    traceback.print_exc()

# transformers' own sources for both models, to read what the fixtures reproduce.
with tarfile.open(os.path.join(OUT, "sources.tar.gz"), "w:gz") as tar:
    root = os.path.dirname(transformers.__file__)
    for sub in ("models/qwen2_5_vl", "models/qwen2_vl"):
        folder = os.path.join(root, sub)
        for name in sorted(os.listdir(folder)):
            if name.endswith(".py"):
                tar.add(os.path.join(folder, name), arcname=f"{sub}/{name}")
    for extra in ("video_utils.py", "video_processing_utils.py", "image_processing_utils_fast.py"):
        path = os.path.join(root, extra)
        if os.path.exists(path):
            tar.add(path, arcname=extra)

for dirpath, _, files in os.walk(OUT):
    for name in sorted(files):
        path = os.path.join(dirpath, name)
        print(f"{os.path.getsize(path):>10} {os.path.relpath(path, OUT)}")
