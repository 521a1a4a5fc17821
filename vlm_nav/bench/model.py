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
`vlm-nav bench model`: how fast and how big each way of deciding is, side by side.

For every model x precision, on the same held-out simulator frames, after a warm-up:

- ``prefill``: one bare forward over image + question with ``logits_to_keep=1``, the
  floor for any method that looks at the frame;
- ``decision``: the navigator's decision (visible? bearing? near/far? path clear?), four
  closed-set questions scored in one shared-prefix pass (``HFBackend.score``);
- ``decision_pipeline``: the same four questions through transformers'
  ``pipeline("decision")`` (its own prompt; one full forward per question);
- ``search_generate_parse`` / ``explore_generate_parse``: the original design, its
  prompts, generation with its budgets (50 / 150 new tokens) and substring parsing
  (``nav.free_text``). Random-weight shapes are made to use the whole budget
  (``min_new_tokens``), as a chatty real model does; the embedded model stops when it
  is done, as it was trained to;
- memory: resident set after load (``gc`` + ``malloc_trim``) and its peak while timing;
  on CUDA, max allocated;
- accuracy (the embedded model only, whose answers mean something): decision accuracy
  per question type on held-out frames, per precision.

Models: ``embedded`` (the shipped model, loaded from its folder) and real published
architectures at their real sizes with random weights built from their configs (speed
and memory don't depend on the weights' values): ``smolvlm-256m``, ``llava-phi3-mini``,
``llava-1.5-7b``, and the families' published sizes of ``vlm_nav.models.fit`` (dimensions
from their config.json): ``qwen3-vl-2b``, ``qwen2.5-vl-3b``, ``smolvlm2-256m``,
``smolvlm2-500m``, ``fastvlm-0.5b`` (FastViTHD needs timm: a ConvNeXt of its output
stands in without it). These take their processors' real
image settings; ``--image-size 640x480`` scales the frames to a camera's size and
``--max-image-pixels`` caps the image as vlm_node's parameter does. Precisions:
``float32``, ``bfloat16``, ``float16`` (CUDA) and ``int8`` (torch dynamic quantization of
Linear layers, CPU); ``onnxruntime:float32`` and
``onnxruntime:int8`` score closed-set questions in ONNX Runtime (the packed pass exported
at load; int8 by ONNX Runtime's dynamic quantization, generation then in torch float32).
The other precisions score in torch (``runtime: torch``).

Every run records wall time and the process's CPU time (all its threads; with one torch
thread, the work done, which holds on a machine shared with other jobs while wall time
follows their load); ``summary.json`` gives ratios of both. Writes ``results.csv`` (one
row per timed run), ``summary.json`` (machine, per configuration p50/p95/mean, ratios,
memory, accuracy) and ``latency.png`` to ``--out``.
``--nodes`` adds frame-to-Twist latency through the real nodes (sim_node, vlm_node,
navigator_node over DDS): the navigator's scored policy vs the original one.
"""

import argparse
import csv
from dataclasses import asdict, dataclass, field
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from typing import Callable, Dict, List, Optional

import numpy as np
from PIL import Image as PILImage

from vlm_nav.bench.latency import frame_to_twist
from vlm_nav.models import fit, registry
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.hf_backend import (_to_pil, HFBackend, images_only_processor,
                                       quantize_linear_int8, release_memory, set_image_budget)
from vlm_nav.nav.free_text import free_text_decision, free_text_prompt
from vlm_nav.perception import vocabulary
from vlm_nav.testing import tiny
from vlm_nav.training import data

DEFAULT_OUT = os.path.join('bench', 'results', 'model_cpu')
# Published sizes of the families (vlm_nav.models.fit's configs) the bench can build.
FAMILY_SHAPES = ('qwen3-vl-2b', 'qwen2.5-vl-3b', 'smolvlm2-256m', 'smolvlm2-500m',
                 'fastvlm-0.5b')
SHAPES = ('embedded', 'smolvlm-256m', 'llava-phi3-mini', 'llava-1.5-7b') + FAMILY_SHAPES
PRECISIONS = ('float32', 'bfloat16', 'float16', 'int8', 'onnxruntime:float32',
              'onnxruntime:int8')
TARGET = 'red ball'
OPERATIONS = ('prefill', 'decision', 'decision_pipeline', 'search_generate_parse',
              'explore_generate_parse')


# ---- memory -------------------------------------------------------------------------------
def rss_mb() -> float:
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


class PeakRss:
    """Samples RSS on a thread (every 5 ms) while the block runs."""

    def __init__(self) -> None:
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self):
        self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_mb())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())


# ---- models -------------------------------------------------------------------------------
def _clip_l336():
    from transformers import CLIPVisionConfig
    return CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=1024,
                            intermediate_size=4096, num_hidden_layers=24,
                            num_attention_heads=16, projection_dim=768)


def shape_config(shape: str, tokenizer):
    """Return the published architecture's config (sizes from the model cards' config.json)."""
    from transformers import (Idefics3Config, Idefics3VisionConfig, LlamaConfig, LlavaConfig,
                              Phi3Config)
    image_token = tokenizer.convert_tokens_to_ids(tiny.IMAGE_TOKEN)
    ids = {'pad_token_id': tokenizer.pad_token_id, 'bos_token_id': tokenizer.bos_token_id,
           'eos_token_id': tokenizer.eos_token_id}
    if shape == 'smolvlm-256m':     # HuggingFaceTB/SmolVLM-256M-Instruct
        vision = Idefics3VisionConfig(image_size=512, patch_size=16, hidden_size=768,
                                      intermediate_size=3072, num_hidden_layers=12,
                                      num_attention_heads=12)
        text = LlamaConfig(vocab_size=49280, hidden_size=576, intermediate_size=1536,
                           num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                           max_position_embeddings=8192, rope_theta=100000.0,
                           tie_word_embeddings=False, **ids)
        return Idefics3Config(vision_config=vision, text_config=text, scale_factor=4,
                              image_token_id=image_token, pad_token_id=tokenizer.pad_token_id)
    if shape == 'llava-phi3-mini':  # xtuner/llava-phi-3-mini-hf
        text = Phi3Config(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                          num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                          max_position_embeddings=4096, **ids)
    elif shape == 'llava-1.5-7b':   # llava-hf/llava-1.5-7b-hf
        text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008,
                           num_hidden_layers=32, num_attention_heads=32,
                           num_key_value_heads=32, max_position_embeddings=4096, **ids)
    else:
        raise ValueError(f'unknown shape {shape!r}; known: {SHAPES}')
    return LlavaConfig(vision_config=_clip_l336(), text_config=text, image_token_id=image_token,
                       image_seq_length=576, vision_feature_select_strategy='default',
                       vision_feature_layer=-2, pad_token_id=tokenizer.pad_token_id)


def shape_processor(shape: str, tokenizer):
    from transformers import (CLIPImageProcessorPil, Idefics3ImageProcessorPil,
                              Idefics3Processor, LlavaProcessor)
    if shape == 'smolvlm-256m':
        image = Idefics3ImageProcessorPil(do_image_splitting=False, size={'longest_edge': 512},
                                          max_image_size={'longest_edge': 512})
        return Idefics3Processor(image_processor=image, tokenizer=tokenizer, image_seq_len=64,
                                 chat_template=tiny.IDEFICS3_CHAT_TEMPLATE)
    image = CLIPImageProcessorPil(size={'shortest_edge': 336},
                                  crop_size={'height': 336, 'width': 336}, do_center_crop=True)
    return LlavaProcessor(image_processor=image, tokenizer=tokenizer, patch_size=14,
                          vision_feature_select_strategy='default',
                          chat_template=tiny.LLAVA_CHAT_TEMPLATE, num_additional_image_tokens=1)


SMOLVLM_SPECIALS = ('<fake_token_around_image>', '<global-img>', '<end_of_utterance>',
                    '<|im_start|>') + tuple(f'<row_{r}_col_{c}>' for r in range(1, 5)
                                            for c in range(1, 5))


# The navigator's answers; single tokens in Qwen2's vocabulary (Qwen-VL, FastVLM), as here.
CHOICE_WORDS = ('yes', 'no', 'left', 'center', 'right', 'near', 'far')


def family_shape(shape: str):
    """
    Return (config, processor) of a published family size with a small tokenizer.

    The config is vlm_nav.models.fit's (the checkpoint's dimensions) with this tokenizer's
    special token ids; the processor has the checkpoint's image settings.
    """
    import transformers
    spec = fit.BY_NAME[shape]
    config = spec.build()
    if spec.family == 'FastVLM':
        return _fastvlm_shape(config, fit.buildable(spec))
    if spec.family in ('Qwen2.5-VL', 'Qwen3-VL'):
        tokenizer = tiny.build_tokenizer(extra_special=tiny.QWEN_SPECIALS,
                                         image_token_attribute=False)
        tokenizer.add_tokens(list(CHOICE_WORDS))
        for name, value in tiny._qwen_tokens(tokenizer).items():
            setattr(config, name, value)
        qwen3 = spec.family == 'Qwen3-VL'
        # The checkpoints' preprocessor_config.json: patch 14 (16), pixels 56^2..12845056
        # (256^2..16777216); 2x2 patches merge into one token.
        patch = 16 if qwen3 else 14
        image = transformers.Qwen2VLImageProcessorPil(
            patch_size=patch, temporal_patch_size=2, merge_size=2,
            min_pixels=65536 if qwen3 else 3136, max_pixels=16777216 if qwen3 else 12845056)
        cls = images_only_processor(getattr(
            transformers, 'Qwen3VLProcessor' if qwen3 else 'Qwen2_5_VLProcessor'))
        system = '' if qwen3 else 'You are a helpful assistant.'
        processor = cls(image_processor=image, tokenizer=tokenizer,
                        chat_template=tiny._qwen_chat_template(system))
    elif spec.family == 'SmolVLM2':
        tokenizer = tiny.build_tokenizer(extra_special=SMOLVLM_SPECIALS)
        config.image_token_id = tokenizer.convert_tokens_to_ids(tiny.IMAGE_TOKEN)
        config.text_config.pad_token_id = tokenizer.pad_token_id
        image = transformers.SmolVLMImageProcessorPil(
            do_image_splitting=True, size={'longest_edge': 2048},
            max_image_size={'longest_edge': 512})
        processor = images_only_processor(transformers.SmolVLMProcessor)(
            image_processor=image, tokenizer=tokenizer, video_processor=None, image_seq_len=64,
            chat_template=tiny.SMOLVLM_CHAT_TEMPLATE)
    else:
        raise ValueError(f'{shape}: no processor recipe for the {spec.family} family here')
    return config, processor


def _fastvlm_shape(config, with_timm: bool):
    """
    Return (config, processor) of a FastVLM size: 1024 px frames, 256 image tokens.

    Without timm (it needs torchvision, which does not install beside the pinned torch)
    FastViTHD is replaced by a transformers ConvNeXt of the same output (3072 channels,
    stride 64: 16 x 16 tokens) and about its size (~100 M parameters against 125 M); the
    language model and projector are FastVLM's.
    """
    import transformers
    tokenizer = tiny.build_tokenizer(extra_special=('<|im_start|>', '<|im_end|>'))
    tokenizer.add_tokens(list(CHOICE_WORDS))
    if not with_timm:
        config.vision_config = transformers.ConvNextConfig(
            num_channels=3, patch_size=4, num_stages=5, hidden_sizes=[96, 192, 384, 768, 3072],
            depths=[2, 2, 6, 2, 1], image_size=1024, hidden_size=3072)
    config.image_token_index = tokenizer.convert_tokens_to_ids(tiny.IMAGE_TOKEN)
    config.text_config.pad_token_id = tokenizer.pad_token_id
    image = transformers.CLIPImageProcessorPil(
        size={'shortest_edge': 1024}, crop_size={'height': 1024, 'width': 1024},
        do_center_crop=True)
    processor = transformers.LlavaProcessor(
        image_processor=image, tokenizer=tokenizer, patch_size=64,
        vision_feature_select_strategy='full', num_additional_image_tokens=0,
        chat_template=tiny._qwen_chat_template('You are a helpful assistant.').replace(
            '<|vision_start|><|image_pad|><|vision_end|>', '<image>\n'))
    return config, processor


def split_precision(precision: str):
    """
    Return (scoring runtime, torch dtype) of a precision label.

    'float32' -> ('torch', 'float32'), 'onnxruntime:float32' -> ('onnxruntime',
    'float32'), 'onnxruntime:int8' -> ('onnxruntime_int8', 'float32') (ONNX Runtime's
    int8; generation in float32).
    """
    runtime, _, dtype = precision.rpartition(':')
    if runtime and dtype == 'int8':
        return runtime + '_int8', 'float32'
    return runtime or 'torch', dtype


def build_backend(shape: str, precision: str, device: str, log=print,
                  max_image_pixels: int = 0):
    """Load an HFBackend: the embedded model from its folder, or a random-weight shape."""
    import torch
    runtime, precision = split_precision(precision)
    dtype = 'float32' if precision == 'int8' else precision
    if shape == 'embedded':      # the vlm_node's own loading path, int8 included
        backend = HFBackend(str(EMBEDDED_MODEL_DIR), device=device, dtype=precision,
                            runtime=runtime)
        backend.load()
        backend.params = registry.memory_by_dtype(backend.model.config)['float32'].parameters
    else:
        if shape in FAMILY_SHAPES:
            config, processor = family_shape(shape)
            tokenizer = processor.tokenizer
        else:
            extra = (('<fake_token_around_image>', '<global-img>', '<end_of_utterance>',
                      '<|im_start|>') if shape == 'smolvlm-256m' else ())
            tokenizer = tiny.build_tokenizer(extra_special=extra)
            config, processor = shape_config(shape, tokenizer), None
        # pipeline("decision") reads its option labels as single tokens, as real vocabularies
        # have them.
        tokenizer.add_tokens(['Yes', 'No', 'A', 'B', 'C', 'D'])
        if processor is None:
            processor = shape_processor(shape, tokenizer)
        log(f'[bench] building {shape} ({precision}) from its config, random weights')
        torch.manual_seed(0)
        cls = registry.model_class(config)
        with torch.device(device):      # random init where the weights live: fast on a GPU
            make = getattr(cls, 'from_config', None) or cls._from_config   # Auto* or a class
            model = make(config, dtype=registry.torch_dtype(dtype)).eval()
        backend = HFBackend(shape, device=device, dtype=dtype, runtime=runtime)
        # What load() would have set from a folder; the weights are all that differ.
        backend.family = registry.family_for(config)
        backend.model, backend.processor = model, processor
        backend.tokenizer = backend.processor.tokenizer
        backend.operations = backend.family.operations
        backend.params = sum(p.numel() for p in backend.model.parameters())
        if max_image_pixels and backend.family.image_budget:    # fixed-resolution: as is
            set_image_budget(processor, backend.family, max_image_pixels, config, shape)
        if runtime != 'torch':
            log(f'[bench] exporting the scoring pass of {shape} to ONNX Runtime')
            backend.export_scoring(quantize=runtime.endswith('_int8'), log=log)
        if precision == 'int8':
            if device != 'cpu':
                raise ValueError('int8 (torch dynamic quantization) runs on the CPU only')
            del model
            backend.model = quantize_linear_int8(backend.model)
    release_memory()
    return backend


# ---- the operations -----------------------------------------------------------------------
def prefill(backend, image) -> int:
    """
    Run one bare forward over image + the visibility question, logits of the last position.

    In ONNX Runtime where the backend scores there: the same graph, one row.
    """
    import torch
    enc = backend._encode(_to_pil(image), backend._prompt(vocabulary.visible_question(TARGET)))
    if backend.onnx is not None:
        backend.onnx.run(backend._packed_inputs([enc['ids']], len(enc['ids']) - 1,
                                                enc['image'], 1))
        return 0
    ids = torch.tensor([enc['ids']], device=backend.model.device)
    with torch.inference_mode():
        # M-RoPE models (Qwen) take their positions from the token types, as generate does.
        backend.model(input_ids=ids, attention_mask=torch.ones_like(ids), logits_to_keep=1,
                      **backend._image_inputs(enc['image'], 1), **backend._token_types(ids))
    return 0


def image_tokens(backend, image) -> int:
    """Return the image tokens one frame takes in the backend's prompt."""
    enc = backend._encode(_to_pil(image), backend._prompt(vocabulary.visible_question(TARGET)))
    token = getattr(backend.model.config, 'image_token_id', None)
    if token is None:
        token = getattr(backend.model.config, 'image_token_index', None)
    return sum(1 for i in enc['ids'] if i == token)


def decision_request(image) -> dict:
    """Return the navigator's four questions in the decision pipeline's request format."""
    (vis, _), (bear, bearings), (dist, distances), (path, _) = \
        vocabulary.target_questions(TARGET)
    return {'state': '<frame>', 'assets': {'<frame>': PILImage.fromarray(image)},
            'questions': {
                'visible': {'type': 'noul', 'instructions': vis},
                'bearing': {'type': 'choice', 'instructions': bear,
                            'criteria': {b: b for b in bearings}},
                'distance': {'type': 'choice', 'instructions': dist,
                             'criteria': {d: d for d in distances}},
                'path': {'type': 'noul', 'instructions': path}}}


def operations(backend, force_budget: bool) -> Dict[str, Callable]:
    """Return name -> fn(image) returning the number of generated tokens (0 for one pass)."""
    ops: Dict[str, Callable] = {
        'prefill': lambda img: prefill(backend, img),
        'decision': lambda img: (backend.score(img, vocabulary.target_questions(TARGET)), 0)[1],
    }
    try:
        from transformers import DecisionConfig, pipeline
        # The shapes' labels are added tokens, which the default sanitizing refuses.
        config = None if not force_budget else DecisionConfig(sanitize_control_tokens=False)
        decide = pipeline('decision', model=backend.model, processor=backend.processor,
                          tokenizer=backend.tokenizer, decision_config=config)
        ops['decision_pipeline'] = lambda img: (decide(decision_request(img)), 0)[1]
    except Exception as error:  # noqa: B902 - reported, the rest of the suite goes on
        print(f'[bench] pipeline("decision") unavailable: {error}')

    def generate_parse(mode: str):
        prompt, budget = free_text_prompt(mode, TARGET)

        def run(img):
            new = backend.generate_ids(img, prompt, budget, budget if force_budget else 0)
            free_text_decision(mode, TARGET,
                               backend.tokenizer.decode(new, skip_special_tokens=True))
            return len(new)
        return run
    ops['search_generate_parse'] = generate_parse('search')
    ops['explore_generate_parse'] = generate_parse('explore')
    return ops


# ---- frames and accuracy ------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def held_out_views():
    """
    Load the held-out evaluation views (layouts never trained on).

    Rendered, or from data_cache/ on a machine without pybullet (the GPU image).
    """
    return data.load_views(data.TEST_SEED_BASE, 200, 8, log=lambda *a: None)


def held_out_frames(n: int, size: str = '') -> np.ndarray:
    """
    Return n held-out frames (96x96 RGB), spread over different layouts.

    ``size`` 'WxH' scales them (bilinear) to a camera's frame size.
    """
    images = held_out_views().images
    frames = images[np.linspace(0, len(images) - 1, n).astype(int)]
    if not size:
        return frames
    width, height = (int(v) for v in size.lower().split('x'))
    return np.stack([np.asarray(PILImage.fromarray(f).resize((width, height),
                                                             PILImage.BILINEAR))
                     for f in frames])


def decision_accuracy(backend, per_type: int) -> Dict[str, float]:
    """Accuracy per closed-set question type through backend.score (the robot's path)."""
    from vlm_nav.training import evaluate      # torch: loaded for an accuracy run only
    views = held_out_views()
    samples = [s for s in data.fixed_eval_samples(views, per_type, seed=12345)
               if s.qtype in evaluate.CLOSED]
    best = [backend.score(views.images[s.view], [(s.question, s.choices)])[0].best
            for s in samples]
    return evaluate._closed_scores(samples, best)


# ---- running ------------------------------------------------------------------------------
@dataclass
class Result:
    model: str
    precision: str
    device: str
    load_s: float
    rss_after_load_mb: float
    rss_before_load_mb: float = 0.0
    peak_rss_mb: float = 0.0
    cuda_max_allocated_mb: float = 0.0
    params: int = 0
    times: Dict[str, List[float]] = field(default_factory=dict)
    # The process's CPU seconds per run (all its threads): the work done, which on a
    # machine shared with other jobs stays put while wall time follows the load.
    cpu_times: Dict[str, List[float]] = field(default_factory=dict)
    tokens: Dict[str, List[int]] = field(default_factory=dict)
    accuracy: Dict[str, float] = field(default_factory=dict)
    errors: Dict[str, str] = field(default_factory=dict)
    frame_size: str = ''            # 'WxH' of the frames timed
    image_tokens: int = 0           # image tokens one frame takes


def _sync(device: str) -> None:
    if device.startswith('cuda'):
        import torch
        torch.cuda.synchronize()


def run_config(shape: str, precision: str, device: str, frames: np.ndarray, runs: int,
               warmup: int, ops_wanted, accuracy_per_type: int, log=print,
               max_image_pixels: int = 0) -> Result:
    import torch
    release_memory()
    if device.startswith('cuda'):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    # The runtime's own memory (torch, transformers, one op run) is not the model's.
    from transformers import AutoProcessor  # noqa: F401
    torch.ones(8, 8) @ torch.ones(8, 8)
    release_memory()
    rss_before = rss_mb()
    started = time.perf_counter()
    backend = build_backend(shape, precision, device, log, max_image_pixels)
    load_s = time.perf_counter() - started
    result = Result(shape, precision, device, round(load_s, 2), round(rss_mb(), 1),
                    rss_before_load_mb=round(rss_before, 1), params=backend.params,
                    frame_size=f'{frames.shape[2]}x{frames.shape[1]}',
                    image_tokens=image_tokens(backend, frames[0]))
    grown = result.rss_after_load_mb - rss_before
    log(f'[bench] {shape} {precision}: loaded in {load_s:.1f} s, '
        f'RSS {result.rss_after_load_mb:.0f} MB ({grown:.0f} MB more than before loading), '
        f'{result.params / 1e6:.1f} M params; a {result.frame_size} frame is '
        f'{result.image_tokens} image tokens')
    ops = operations(backend, force_budget=shape != 'embedded')
    with PeakRss() as peak:
        for name in ops_wanted:
            if name not in ops:
                result.errors[name] = 'unavailable'
                continue
            fn = ops[name]
            try:
                for i in range(warmup):
                    fn(frames[i % len(frames)])
                _sync(device)
                for i in range(runs):
                    c0, t0 = time.process_time(), time.perf_counter()
                    n = fn(frames[i % len(frames)])
                    _sync(device)
                    result.times.setdefault(name, []).append(time.perf_counter() - t0)
                    result.cpu_times.setdefault(name, []).append(time.process_time() - c0)
                    result.tokens.setdefault(name, []).append(n)
            except Exception as error:  # noqa: B902 - one failing op must not end the suite
                result.errors[name] = f'{type(error).__name__}: {error}'
                log(f'[bench]   {name}: FAILED {result.errors[name]}')
                continue
            t = np.array(result.times[name]) * 1e3
            cpu = np.array(result.cpu_times[name]) * 1e3
            log(f'[bench]   {name:24s} p50 {np.percentile(t, 50):9.1f} ms  '
                f'p95 {np.percentile(t, 95):9.1f} ms  CPU p50 {np.percentile(cpu, 50):9.1f} ms  '
                f'tokens {np.mean(result.tokens[name]):.0f}')
    result.peak_rss_mb = round(peak.peak, 1)
    if device.startswith('cuda'):
        result.cuda_max_allocated_mb = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if accuracy_per_type and shape == 'embedded':
        result.accuracy = decision_accuracy(backend, accuracy_per_type)
        accuracy = ' '.join(f'{k} {v:.3f}' for k, v in result.accuracy.items())
        log(f'[bench]   accuracy {accuracy}')
    del backend, ops
    release_memory()
    return result


def summarize(result: Result) -> Dict:
    out = {k: getattr(result, k) for k in ('model', 'precision', 'device', 'load_s',
                                           'rss_before_load_mb', 'rss_after_load_mb',
                                           'peak_rss_mb',
                                           'cuda_max_allocated_mb', 'params', 'accuracy',
                                           'errors', 'frame_size', 'image_tokens')}
    stats = {}
    for name, times in result.times.items():
        t = np.array(times) * 1e3
        tokens = float(np.mean(result.tokens[name]))
        stats[name] = {'p50_ms': round(float(np.percentile(t, 50)), 2),
                       'p95_ms': round(float(np.percentile(t, 95)), 2),
                       'mean_ms': round(float(t.mean()), 2), 'runs': len(t),
                       'new_tokens': tokens}
        if result.cpu_times.get(name):
            stats[name]['cpu_p50_ms'] = round(
                float(np.percentile(np.array(result.cpu_times[name]) * 1e3, 50)), 2)
        if tokens:
            stats[name]['tokens_per_s'] = round(tokens / (t.mean() / 1e3), 2)
    out['model_rss_mb'] = round(result.rss_after_load_mb - result.rss_before_load_mb, 1)
    out['operations'] = stats
    p50 = {k: v['p50_ms'] for k, v in stats.items()}
    ratios = {}
    if 'prefill' in p50 and 'decision' in p50:
        ratios['decision_over_prefill'] = round(p50['decision'] / p50['prefill'], 3)
    for name in ('search_generate_parse', 'explore_generate_parse', 'decision_pipeline'):
        if name in p50 and 'decision' in p50:
            ratios[f'{name}_over_decision'] = round(p50[name] / p50['decision'], 2)
    cpu = {k: v['cpu_p50_ms'] for k, v in stats.items() if 'cpu_p50_ms' in v}
    if 'prefill' in cpu and 'decision' in cpu:
        ratios['decision_over_prefill_cpu'] = round(cpu['decision'] / cpu['prefill'], 3)
    for name in ('search_generate_parse', 'explore_generate_parse'):
        if name in cpu and 'decision' in cpu:
            ratios[f'{name}_over_decision_cpu'] = round(cpu[name] / cpu['decision'], 2)
    out['ratios'] = ratios
    return out


def machine_info(device: str) -> Dict:
    import torch
    import transformers
    info = {'python': platform.python_version(), 'torch': torch.__version__,
            'transformers': transformers.__version__, 'cpu': platform.processor() or '',
            'cores': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'load_average': os.getloadavg(), 'date': time.strftime('%Y-%m-%d %H:%M:%S')}
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    info['cpu'] = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    if device.startswith('cuda'):
        info['gpu'] = torch.cuda.get_device_name()
    return info


def write_outputs(out_dir: str, results: List[Result], summary: Dict) -> None:
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, 'results.csv'), 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['model', 'precision', 'device', 'operation', 'run', 'ms', 'new_tokens'])
        for r in results:
            for name, times in r.times.items():
                for i, (t, n) in enumerate(zip(times, r.tokens[name])):
                    w.writerow([r.model, r.precision, r.device, name, i, f'{t * 1e3:.2f}', n])
    with open(os.path.join(out_dir, 'summary.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    if results:
        plot(out_dir, results)


def plot(out_dir: str, results: List[Result]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    models = list(dict.fromkeys(r.model for r in results))
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.2), squeeze=False)
    for ax, model in zip(axes[0], models):
        rows = [r for r in results if r.model == model]
        names = [n for n in OPERATIONS if any(n in r.times for r in rows)]
        width = 0.8 / max(1, len(rows))
        for j, r in enumerate(rows):
            p50 = [np.percentile(r.times[n], 50) * 1e3 if n in r.times else np.nan
                   for n in names]
            p95 = [np.percentile(r.times[n], 95) * 1e3 if n in r.times else np.nan
                   for n in names]
            x = np.arange(len(names)) + j * width
            ax.bar(x, p50, width, label=f'{r.precision} (p50; whisker p95)')
            ax.errorbar(x, p50, yerr=[np.zeros(len(names)), np.subtract(p95, p50)],
                        fmt='none', ecolor='k', capsize=2, lw=0.8)
        ax.set_xticks(np.arange(len(names)) + width * (len(rows) - 1) / 2)
        ax.set_xticklabels([n.replace('_generate_parse', '\ngen+parse').replace(
            '_pipeline', '\npipeline') for n in names], fontsize=8)
        ax.set_yscale('log')
        ax.set_ylabel('ms per decision (log)')
        ax.set_title(f'{model} ({rows[0].device})')
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, 'latency.png'), dpi=110)
    plt.close(fig)


def run_isolated(model: str, precision: str, args, runs: int, ops_wanted) -> Optional[Result]:
    """One configuration in a fresh process: memory figures are then its own."""
    spec = {'model': model, 'precision': precision, 'device': args.device, 'runs': runs,
            'warmup': min(args.warmup, runs), 'frames': args.frames, 'threads': args.threads,
            'operations': ops_wanted, 'accuracy_per_type': args.accuracy_per_type,
            'image_size': args.image_size, 'max_image_pixels': args.max_image_pixels}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'result.json')
        proc = subprocess.run([sys.executable, '-m', 'vlm_nav.bench.model', '--child',
                               json.dumps(spec), out])
        if proc.returncode != 0 or not os.path.exists(out):
            print(f'[bench] {model} {precision}: failed (exit {proc.returncode}); skipped')
            return None
        with open(out) as f:
            return Result(**json.load(f))


def _child(spec_json: str, out: str) -> int:
    import torch
    spec = json.loads(spec_json)
    if spec['threads']:
        torch.set_num_threads(spec['threads'])
    frames = held_out_frames(spec['frames'], spec.get('image_size', ''))
    try:
        result = run_config(spec['model'], spec['precision'], spec['device'], frames,
                            spec['runs'], spec['warmup'], spec['operations'],
                            spec['accuracy_per_type'],
                            max_image_pixels=spec.get('max_image_pixels', 0))
    except (MemoryError, RuntimeError, ValueError) as error:
        print(f"[bench] {spec['model']} {spec['precision']}: skipped: {error}")
        return 1
    with open(out, 'w') as f:
        json.dump(asdict(result), f)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--models', default='embedded,smolvlm-256m',
                        help=f'comma-separated, from {", ".join(SHAPES)} (empty: only '
                        '--nodes)')
    parser.add_argument('--precisions', default='float32,bfloat16,int8',
                        help=f'comma-separated, from {", ".join(PRECISIONS)}')
    parser.add_argument('--operations', default=','.join(OPERATIONS))
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--runs', type=int, default=10, help='timed runs per operation')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--frames', type=int, default=8, help='distinct held-out frames')
    parser.add_argument('--image-size', default='',
                        help="scale the frames to WxH, e.g. 640x480 (a camera's frame; "
                        "default: the simulator's 96x96)")
    parser.add_argument('--max-image-pixels', type=int, default=0,
                        help="vlm_node's max_image_pixels for dynamic-resolution families "
                        "(0: the checkpoint's setting; fixed-resolution ones ignore it)")
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: all)')
    parser.add_argument('--accuracy-per-type', type=int, default=100,
                        help='held-out questions per type for the accuracy column (0: skip)')
    parser.add_argument('--runs-for', default='',
                        help="per-model runs override, e.g. 'llava-phi3-mini=2'")
    parser.add_argument('--nodes', type=float, default=0.0,
                        help='also measure frame-to-Twist through the real nodes for this '
                        'many seconds per policy (embedded model)')
    parser.add_argument('--out', default=DEFAULT_OUT)


def run(args: argparse.Namespace) -> int:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    models = [m for m in args.models.split(',') if m]
    precisions = [p for p in args.precisions.split(',') if p]
    ops_wanted = [o for o in args.operations.split(',') if o]
    for m in models:
        if m not in SHAPES:
            print(f'unknown model {m!r}; known: {", ".join(SHAPES)}', file=sys.stderr)
            return 2
    runs_for = dict(item.split('=') for item in args.runs_for.split(',') if item)
    print(f'[bench] {args.frames} held-out frames; models {models}; precisions {precisions}; '
          f'device {args.device}; torch threads {torch.get_num_threads()}')
    results = []
    for model in models:
        for precision in precisions:
            runtime, dtype = split_precision(precision)
            if (dtype == 'int8' or runtime != 'torch') and not args.device == 'cpu':
                continue                # CPU runtimes
            if precision == 'float16' and args.device == 'cpu':
                continue
            runs = int(runs_for.get(model, args.runs))
            result = run_isolated(model, precision, args, runs, ops_wanted)
            if result is not None:
                results.append(result)
    summary = {'command': 'vlm-nav bench model ' + ' '.join(sys.argv[3:]) if sys.argv[1:3] ==
               ['bench', 'model'] else ' '.join(sys.argv),
               'machine': machine_info(args.device),
               'configs': [summarize(r) for r in results]}
    if args.nodes > 0:
        summary['frame_to_twist'] = frame_to_twist(args.nodes)
    write_outputs(args.out, results, summary)
    print(format_table(summary))
    print(f'[bench] wrote {args.out}/results.csv, summary.json, latency.png')
    return 0


def format_table(summary: Dict) -> str:
    lines = ['| model | precision | prefill p50 ms | decision p50 ms | decision / prefill | '
             'pipeline("decision") p50 ms | search gen+parse p50 ms (tokens) | '
             'explore gen+parse p50 ms (tokens) | gen-50 / decision | memory MB: RSS after load '
             '(model) / GPU max allocated |', '|' + ' --- |' * 10]
    for c in summary['configs']:
        op = c['operations']

        def cell(name, tokens=False):
            if name not in op:
                return c['errors'].get(name, '-')[:40]
            text = f"{op[name]['p50_ms']:.1f}"
            return text + (f" ({op[name]['new_tokens']:.0f})" if tokens else '')
        r = c['ratios']
        memory = (f"{c['cuda_max_allocated_mb']:.0f} GPU" if c['cuda_max_allocated_mb'] else
                  f"{c['rss_after_load_mb']:.0f} ({c['model_rss_mb']:.0f})")
        lines.append(
            f"| {c['model']} | {c['precision']} | {cell('prefill')} | {cell('decision')} | "
            f"{r.get('decision_over_prefill', '-')} | {cell('decision_pipeline')} | "
            f"{cell('search_generate_parse', True)} | {cell('explore_generate_parse', True)} | "
            f"{r.get('search_generate_parse_over_decision', '-')} | {memory} |")
    f2t = summary.get('frame_to_twist')
    if f2t:
        lines.append('')
        lines.append('| navigator (embedded model, real nodes) | frame-to-Twist p50 ms | p95 ms | '
                     'decisions |')
        lines.append('| --- | --- | --- | --- |')
        for policy, s in f2t.items():
            if isinstance(s, dict) and 'p50_ms' in s:
                lines.append(f"| {policy} | {s['p50_ms']:.1f} | {s['p95_ms']:.1f} | "
                             f"{s['decisions']} |")
    return '\n'.join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['--child']:
        return _child(argv[1], argv[2])
    parser = argparse.ArgumentParser(prog='vlm-nav bench model', description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
