#!/usr/bin/env python3
"""Extra references for the preprocessing tests (tests/Backend.Tests/Vision), made with transformers 5.17.

Complements tools/make_llava_fixtures.py with the cases its single image and video do not reach: images whose
best resolution needs padding (odd remainders included), a square, a tall and a very wide image, a bilinear
shortest-edge video processor, and the processor's <image> token counts for many sizes, for the tiny fixture's
pinpoints and for the Hub checkpoints' (384-pixel tiles, 27x27 features; anyres_max_9 and anyres_max_4).

The pixel references are the processors' uint8 output with do_rescale and do_normalize off (resize, pad and tiling
only; the fused normalization is covered by reference.safetensors), which keeps this file small.

Usage: python3 tools/make_vision_fixtures.py OUT_DIR   (run from the repository root; copy the outputs to tests/Backend.Tests/Fixtures/vision/)
"""
import inspect
import json
import os
import sys

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from transformers import AutoProcessor, LlavaOnevisionVideoProcessor

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
MODEL = "tests/Backend.Tests/Fixtures/llava-ov-tiny/model"
rng = np.random.default_rng(1)
processor = AutoProcessor.from_pretrained(MODEL)
ip = processor.image_processor
tensors, meta = {}, {"transformers": transformers.__version__, "torch": torch.__version__,
                     "image_processor": type(ip).__name__, "video_processor": type(processor.video_processor).__name__}

# Images: anyres pixel values (base + tiles) and image_sizes.
for name, (h, w) in {"pad_odd": (50, 149), "tall": (157, 61), "square": (64, 64), "wide_small": (23, 200),
                      "very_wide": (9, 400)}.items():
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    out = ip(images=[image], do_rescale=False, do_normalize=False, return_tensors="pt")
    assert out["pixel_values"].dtype == torch.uint8
    tensors[f"image.{name}.raw"] = torch.from_numpy(image)
    tensors[f"image.{name}.pixels"] = out["pixel_values"][0].contiguous()
    tensors[f"image.{name}.image_sizes"] = out["image_sizes"]

# Video: bilinear, shortest edge 60 (90x120 frames -> 60x80).
vp = LlavaOnevisionVideoProcessor(size={"shortest_edge": 60}, resample=2, do_rescale=False, do_normalize=False)
frames = rng.integers(0, 256, size=(3, 90, 120, 3), dtype=np.uint8)
tensors["video.bilinear.frames"] = torch.from_numpy(frames)
pixels = vp(videos=[frames], return_tensors="pt")["pixel_values_videos"][0]
assert pixels.dtype == torch.uint8
tensors["video.bilinear.pixels"] = pixels.contiguous()
meta["video_bilinear_config"] = vp.to_dict()

# Token counts: the processor's own _get_number_of_features.
sizes = [(100, 150), (50, 149), (157, 61), (64, 64), (23, 200), (1, 1), (70, 70), (71, 69), (500, 20), (20, 500),
         (384, 384), (1080, 1920), (1920, 1080), (480, 640), (333, 777), (2304, 2304), (4000, 3000), (10, 5000), (777, 333),
         (9, 400), (1000, 1001), (1001, 1000), (3, 7), (719, 1279), (1279, 719), (768, 1536), (1536, 767)]
meta["tiny_counts"] = [[h, w, processor._get_number_of_features(h, w, 70, 70)] for h, w in sizes]
ip.image_grid_pinpoints = [[384 * a, 384 * b] for a in range(1, 7) for b in range(1, 7)]
processor.num_image_tokens = 729
meta["hub_counts"] = [[h, w, processor._get_number_of_features(h, w, 384, 384)] for h, w in sizes]
processor.vision_aspect_ratio = "anyres_max_4"
meta["hub_counts_max4"] = [[h, w, processor._get_number_of_features(h, w, 384, 384)] for h, w in sizes]

save_file(tensors, os.path.join(OUT, "preprocessing-extra.safetensors"))
with open(os.path.join(OUT, "preprocessing-extra.json"), "w") as f:
    json.dump(meta, f, indent=1)

# The source actually run, for the record.
with open(os.path.join(OUT, "sources.txt"), "w") as f:
    for obj in (type(ip), type(ip).__mro__[1], type(processor.video_processor).__mro__[1], type(processor)):
        f.write(f"##### {obj}\n{inspect.getsource(obj)}\n")
print(json.dumps({k: v for k, v in meta.items() if k != "video_bilinear_config"}))
print({k: tuple(v.shape) for k, v in tensors.items()})
