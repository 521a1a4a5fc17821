# Copyright 2026 vlm_nav maintainers
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.

"""
Decision vs one bare prefill, and the prefill against the image budget, of small families.

Run from the repository root: ``.venv/bin/python bench/results/onepass_families/measure.py``.
Writes results.json beside this file. Random-weight models of the real classes, one torch
thread; a decision is the navigator's four target questions about one camera frame
(HFBackend.score: one packed pass, or prefill + tails for LFM2-like models); a bare
prefill is one question alone (processor + one forward, logits of the last position).
The two run alternately, 9 pairs: medians and the median of the pairs' ratios.
Medium shapes (not the tiny test models): Qwen2.5-VL with a 4-block ViT (patch 14, 2x2
merge) and a 4-layer 512-wide LM, a 640x480 frame; the budget sweeps max_image_pixels.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

from vlm_nav.models import load_backend
from vlm_nav.perception.vocabulary import target_questions
from vlm_nav.testing import tiny


def paired(first, second, n=9):
    """
    Time the two alternately, n pairs; return the medians and the median of the ratios.

    Alternating keeps a shared machine's changing load from favouring either.
    """
    first()
    second()
    a, b = [], []
    for _ in range(n):
        for fn, out in ((first, a), (second, b)):
            start = time.perf_counter()
            fn()
            out.append(time.perf_counter() - start)
    return (float(np.median(a)), float(np.median(b)),
            float(np.median(np.divide(b, a))))


def measure(backend, image):
    questions = target_questions('red ball')
    prompt = backend._prompt(questions[0][0])
    from vlm_nav.models.hf_backend import _to_pil

    def prefill():
        enc = backend._encode(_to_pil(image), prompt)
        ids = torch.tensor([enc['ids']])
        with torch.inference_mode():
            backend.model(input_ids=ids, logits_to_keep=1,
                          **backend._image_inputs(enc['image'], 1), **backend._token_types(ids))

    enc = backend._encode(_to_pil(image), prompt)
    tokens = enc['ids'].count(backend.model.config.image_token_id)
    bare, decision, ratio = paired(prefill, lambda: backend.score(image, questions))
    return {'image_tokens': tokens, 'prompt_tokens': len(enc['ids']),
            'prefill_ms': round(bare * 1e3, 1), 'decision_ms': round(decision * 1e3, 1),
            'ratio': round(ratio, 2)}


def medium_qwen(folder):
    """Save a medium Qwen2.5-VL: real patch and merge sizes, a short ViT and LM."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
    tokenizer = tiny.build_tokenizer(extra_special=tiny.QWEN_SPECIALS,
                                     image_token_attribute=False)
    vision = {'depth': 4, 'hidden_size': 256, 'intermediate_size': 512, 'num_heads': 4,
              'patch_size': 14, 'spatial_merge_size': 2, 'temporal_patch_size': 2,
              'window_size': 112, 'fullatt_block_indexes': [3], 'out_hidden_size': 512}
    text = {**tiny._text_kwargs(tokenizer, hidden=512, layers=4),
            'num_attention_heads': 8, 'num_key_value_heads': 2,
            'max_position_embeddings': 4096,
            'rope_parameters': {'rope_type': 'default', 'rope_theta': 10000.0,
                                'mrope_section': [8, 12, 12]}}
    config = Qwen2_5_VLConfig(vision_config=vision, text_config=text,
                              **tiny._qwen_tokens(tokenizer))
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration(config).eval()
    processor = tiny._qwen_processor('Qwen2_5_VLProcessor', tokenizer, 14,
                                     'You are a helpful assistant.', 640 * 480)
    return tiny._save(folder, model, processor, tokenizer)


def main():
    torch.set_num_threads(1)
    out = {'tiny': {}, 'qwen2_5_vl_medium_budget': {}}
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frame = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as root:
        for name in ('qwen2_5_vl', 'qwen3_vl', 'smolvlm', 'gemma3', 'fast_vlm'):
            folder = tiny.BUILDERS[name](os.path.join(root, name))
            out['tiny'][name] = measure(load_backend(folder), small)
            print(name, out['tiny'][name], flush=True)
        folder = medium_qwen(os.path.join(root, 'medium'))
        for pixels in (640 * 480, 320 * 240, 160 * 120):
            backend = load_backend(folder, max_image_pixels=pixels)
            out['qwen2_5_vl_medium_budget'][pixels] = measure(backend, frame)
            print(pixels, out['qwen2_5_vl_medium_budget'][pixels], flush=True)
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'results.json')
    with open(path, 'w') as f:
        json.dump(out, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
