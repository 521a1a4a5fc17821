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
What fits where: published model sizes at each precision against robot and desktop boards.

Every row is a published model's shape, built here as its transformers config with the
dimensions of the model's ``config.json`` (hidden size, layers, heads, KV heads, MLP
size, vocabulary, vision tower), so nothing is downloaded. Memory comes from the
registry's config-based estimate (``registry.memory_by_dtype``: parameters counted on the
``meta`` device, exact for the classes; ``registry.kv_cache_bytes_per_token``) for one
request: weights, vision tower included, plus the KV cache of the image's tokens and
``registry.TEXT_TOKENS`` of prompt and answer.

Precisions: ``float32``; ``bfloat16`` (= float16); ``int8`` and ``int4``, weight-only
quantization of the Linear and Embedding weights (those ``registry.memory_by_dtype``'s int8
counts, a tied LM head once), everything else and the KV cache in 16 bits; int4 adds a
16-bit scale and zero point per group of 128 weights (GPTQ/AWQ/GGUF Q4 style).

A model fits a board when the estimate times ``MEMORY_HEADROOM`` (activations and
allocator slack, as ``vlm-nav doctor`` uses) is at most the board's memory less what the
board keeps for itself (``Board.reserved_gib``: on a Jetson the CPU and GPU share one
memory, so the OS, ROS 2 and the other nodes come out of the same pool).
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from vlm_nav.models import registry

GIB = 2 ** 30
# Over the estimate: activations of one request and allocator slack (vlm-nav doctor's).
MEMORY_HEADROOM = 1.2
PRECISIONS = ('float32', 'bfloat16', 'int8', 'int4')
# Weight-only quantization: bytes per quantized weight (int4: 4 bits + a 16-bit scale and
# a 16-bit zero point per group of 128 weights).
QUANT_GROUP = 128
QUANT_BYTES = {'int8': 1.0, 'int4': 0.5 + 4 / QUANT_GROUP}
# A camera frame for the families whose image size follows the frame's (640x480 VGA).
CAMERA_FRAME = (640, 480)

# Jetson: one LPDDR5 memory for CPU and GPU. Taken off before the model: ~0.6 GiB of
# firmware carve-outs the kernel never sees (an 8 GB Orin Nano reports 7.4 GiB), ~1 GiB
# for headless Ubuntu/L4T with the ROS 2 daemon and DDS, ~0.9 GiB for the package's other
# nodes (camera, navigator, describer: Python processes of 100-300 MB each) and vlm_node's
# host-side CUDA and torch libraries.
JETSON_RESERVED_GIB = 2.5
# Desktop GPU: its own memory; the CUDA context and a display take ~0.5 GiB of it.
DESKTOP_RESERVED_GIB = 0.5


@dataclass(frozen=True)
class Board:
    """A board or GPU: its memory and what stays reserved for everything but the model."""

    name: str
    memory_gib: float
    reserved_gib: float
    shared: bool            # CPU and GPU share the memory (Jetson)

    @property
    def budget_bytes(self) -> int:
        return int((self.memory_gib - self.reserved_gib) * GIB)


BOARDS = (
    Board('Orin Nano 8 GB', 8, JETSON_RESERVED_GIB, True),
    Board('Orin NX 16 GB', 16, JETSON_RESERVED_GIB, True),
    Board('AGX Orin 32 GB', 32, JETSON_RESERVED_GIB, True),
    Board('AGX Orin 64 GB', 64, JETSON_RESERVED_GIB, True),
    Board('8 GB GPU', 8, DESKTOP_RESERVED_GIB, False),
    Board('16 GB GPU', 16, DESKTOP_RESERVED_GIB, False),
    Board('24 GB GPU', 24, DESKTOP_RESERVED_GIB, False),
)


# ---- published shapes ---------------------------------------------------------------------
def _clip_l336():
    from transformers import CLIPVisionConfig
    return CLIPVisionConfig(image_size=336, patch_size=14, hidden_size=1024,
                            intermediate_size=4096, num_hidden_layers=24,
                            num_attention_heads=16, projection_dim=768)


def _llava(text):
    from transformers import LlavaConfig
    return LlavaConfig(vision_config=_clip_l336(), text_config=text, image_token_id=32000,
                       image_seq_length=576, vision_feature_layer=-2)


def llava_15_7b():
    from transformers import LlamaConfig
    return _llava(LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008,
                              num_hidden_layers=32, num_attention_heads=32,
                              num_key_value_heads=32, max_position_embeddings=4096))


def llava_phi3_mini():
    from transformers import Phi3Config
    return _llava(Phi3Config(vocab_size=32064, hidden_size=3072, intermediate_size=8192,
                             num_hidden_layers=32, num_attention_heads=32,
                             num_key_value_heads=32, max_position_embeddings=4096))


def bakllava():
    from transformers import MistralConfig
    return _llava(MistralConfig(vocab_size=32002, hidden_size=4096, intermediate_size=14336,
                                num_hidden_layers=32, num_attention_heads=32,
                                num_key_value_heads=8, max_position_embeddings=32768))


def blip2_opt_27b():
    from transformers import Blip2Config, OPTConfig
    text = OPTConfig(vocab_size=50304, hidden_size=2560, ffn_dim=10240, num_hidden_layers=32,
                     num_attention_heads=32, word_embed_proj_dim=2560,
                     max_position_embeddings=2048)
    return Blip2Config(text_config=text)   # ViT-g and Q-Former are the defaults


def _smolvlm(model_type, vision, text, scale):
    from transformers import AutoConfig
    v_size, v_patch, v_hidden, v_mlp, v_layers, v_heads = vision
    hidden, mlp, layers, heads, kv = text
    return AutoConfig.for_model(
        model_type, scale_factor=scale, tie_word_embeddings=False,
        vision_config={'image_size': v_size, 'patch_size': v_patch, 'hidden_size': v_hidden,
                       'intermediate_size': v_mlp, 'num_hidden_layers': v_layers,
                       'num_attention_heads': v_heads},
        text_config={'model_type': 'llama', 'vocab_size': 49280, 'hidden_size': hidden,
                     'intermediate_size': mlp, 'num_hidden_layers': layers,
                     'num_attention_heads': heads, 'num_key_value_heads': kv,
                     'max_position_embeddings': 8192, 'tie_word_embeddings': False})


SIGLIP_B512 = (512, 16, 768, 3072, 12, 12)      # SigLIP base, 512 px
SIGLIP_SO400M_384 = (384, 14, 1152, 4304, 27, 16)


def smolvlm_256m():
    return _smolvlm('idefics3', SIGLIP_B512, (576, 1536, 30, 9, 3), 4)


def smolvlm2_256m():
    return _smolvlm('smolvlm', SIGLIP_B512, (576, 1536, 30, 9, 3), 4)


def smolvlm2_500m():
    return _smolvlm('smolvlm', SIGLIP_B512, (960, 2560, 32, 15, 5), 4)


def smolvlm2_2b():
    return _smolvlm('smolvlm', SIGLIP_SO400M_384, (2048, 8192, 24, 32, 32), 3)


def _qwen25_vl(hidden, mlp, layers, heads, kv, vocab, tie):
    from transformers import Qwen2_5_VLConfig
    return Qwen2_5_VLConfig(
        text_config={'vocab_size': vocab, 'hidden_size': hidden, 'intermediate_size': mlp,
                     'num_hidden_layers': layers, 'num_attention_heads': heads,
                     'num_key_value_heads': kv, 'max_position_embeddings': 128000,
                     'rope_parameters': {'rope_type': 'default', 'rope_theta': 1e6,
                                         'mrope_section': [16, 24, 24]}},
        vision_config={'depth': 32, 'hidden_size': 1280, 'intermediate_size': 3420,
                       'num_heads': 16, 'out_hidden_size': hidden, 'patch_size': 14,
                       'spatial_merge_size': 2, 'window_size': 112,
                       'fullatt_block_indexes': [7, 15, 23, 31], 'tokens_per_second': 2},
        tie_word_embeddings=tie)


def qwen25_vl_3b():
    return _qwen25_vl(2048, 11008, 36, 16, 2, 151936, True)


def qwen25_vl_7b():
    return _qwen25_vl(3584, 18944, 28, 28, 4, 152064, False)


def _qwen3_vl(text, vision, tie):
    from transformers import Qwen3VLConfig
    hidden, mlp, layers, heads, kv = text
    depth, v_hidden, v_mlp, deepstack = vision
    return Qwen3VLConfig(
        text_config={'vocab_size': 151936, 'hidden_size': hidden, 'intermediate_size': mlp,
                     'num_hidden_layers': layers, 'num_attention_heads': heads,
                     'num_key_value_heads': kv, 'head_dim': 128,
                     'max_position_embeddings': 262144,
                     'rope_parameters': {'rope_type': 'default', 'rope_theta': 5e6,
                                         'mrope_section': [24, 20, 20],
                                         'mrope_interleaved': True}},
        vision_config={'depth': depth, 'hidden_size': v_hidden, 'intermediate_size': v_mlp,
                       'num_heads': 16, 'out_hidden_size': hidden, 'patch_size': 16,
                       'spatial_merge_size': 2, 'num_position_embeddings': 2304,
                       'deepstack_visual_indexes': deepstack},
        tie_word_embeddings=tie)


QWEN3_VIT_SMALL = (24, 1024, 4096, [5, 11, 17])
QWEN3_VIT_LARGE = (27, 1152, 4304, [8, 16, 24])


def qwen3_vl_2b():
    return _qwen3_vl((2048, 6144, 28, 16, 8), QWEN3_VIT_SMALL, True)


def qwen3_vl_4b():
    return _qwen3_vl((2560, 9728, 36, 32, 8), QWEN3_VIT_SMALL, True)


def qwen3_vl_8b():
    return _qwen3_vl((4096, 12288, 36, 32, 8), QWEN3_VIT_LARGE, False)


def _gemma3(hidden, mlp, layers, heads, kv):
    from transformers import Gemma3Config
    return Gemma3Config(
        text_config={'vocab_size': 262208, 'hidden_size': hidden, 'intermediate_size': mlp,
                     'num_hidden_layers': layers, 'num_attention_heads': heads,
                     'num_key_value_heads': kv, 'head_dim': 256, 'sliding_window': 1024,
                     'query_pre_attn_scalar': 256},
        vision_config={'model_type': 'siglip_vision_model', 'image_size': 896,
                       'patch_size': 14, 'hidden_size': 1152, 'intermediate_size': 4304,
                       'num_hidden_layers': 27, 'num_attention_heads': 16,
                       'vision_use_head': False},
        mm_tokens_per_image=256)


def gemma3_4b():
    return _gemma3(2560, 10240, 34, 8, 4)


def gemma3_12b():
    return _gemma3(3840, 15360, 48, 16, 8)


def _lfm2_vl(text, vision, projector):
    from transformers import Lfm2VlConfig
    hidden, mlp, heads, kv = text
    v_hidden, v_mlp, v_layers, v_heads = vision
    return Lfm2VlConfig(
        text_config={'model_type': 'lfm2', 'vocab_size': 65536, 'hidden_size': hidden,
                     'block_ff_dim': mlp, 'num_hidden_layers': 16,
                     'num_attention_heads': heads, 'num_key_value_heads': kv,
                     'full_attn_idxs': [2, 5, 8, 10, 12, 14],
                     'block_auto_adjust_ff_dim': True, 'block_multiple_of': 256,
                     'block_ffn_dim_multiplier': 1.0},
        vision_config={'model_type': 'siglip2_vision_model', 'hidden_size': v_hidden,
                       'intermediate_size': v_mlp, 'num_hidden_layers': v_layers,
                       'num_attention_heads': v_heads, 'num_patches': 256, 'patch_size': 16,
                       'vision_use_head': False},
        projector_hidden_size=projector, downsample_factor=2)


def lfm2_vl_450m():
    return _lfm2_vl((1024, 6656, 16, 8), (768, 3072, 12, 12), 2048)


def lfm2_vl_16b():
    return _lfm2_vl((2048, 12288, 32, 8), (1152, 4304, 26, 16), 2560)


def _fastvlm(hidden, mlp, layers, heads, kv, vocab, tie):
    from transformers import FastVlmConfig
    return FastVlmConfig(
        text_config={'model_type': 'qwen2', 'vocab_size': vocab, 'hidden_size': hidden,
                     'intermediate_size': mlp, 'num_hidden_layers': layers,
                     'num_attention_heads': heads, 'num_key_value_heads': kv,
                     'tie_word_embeddings': tie},
        image_seq_length=256, tie_word_embeddings=tie)   # FastViTHD: 1024 px / 64


def fastvlm_05b():
    return _fastvlm(896, 4864, 24, 14, 2, 151936, True)


def fastvlm_15b():
    return _fastvlm(1536, 8960, 28, 12, 2, 151936, True)


def fastvlm_7b():
    return _fastvlm(3584, 18944, 28, 28, 4, 152064, False)


def _vga_tokens(factor: int, cap_tokens: Optional[int] = None) -> int:
    """Return the image tokens of a CAMERA_FRAME after a Qwen-style resize to ``factor``."""
    width, height = CAMERA_FRAME
    if cap_tokens is None:      # Qwen: each side rounded to the nearest multiple of factor
        return round(width / factor) * round(height / factor)
    # LFM2-VL: shrunk (aspect kept, sides floored to factor) to at most cap_tokens
    scale = ((width * height) / (cap_tokens * factor ** 2)) ** 0.5
    return int(width / scale // factor) * int(height / scale // factor)


def _tiled_tokens(longest_edge: int, tile: int, per_tile: int) -> int:
    """
    Return the image tokens of a CAMERA_FRAME split into tiles as SmolVLM's processor does.

    The frame is scaled to ``longest_edge`` (aspect kept), cut into ``tile``-pixel tiles,
    and a global view of one tile is added; each tile is ``per_tile`` tokens.
    """
    import math
    width, height = CAMERA_FRAME
    scale = longest_edge / max(width, height)
    tiles = math.ceil(width * scale / tile) * math.ceil(height * scale / tile)
    return (tiles + 1) * per_tile


@dataclass(frozen=True)
class Shape:
    """A published model: where its dimensions come from and how to build its config."""

    name: str                       # what `vlm-nav doctor --model` accepts
    family: str                     # the family's name in the table
    model_id: str                   # the hub id whose config.json the numbers are from
    build: Callable[[], Any]
    # Image tokens of one camera frame where the family resizes or tiles the frame (None:
    # the registry's count from the config).
    image_tokens: Optional[int] = None
    requires: Tuple[str, ...] = ()  # packages the classes need to be built
    # Where those packages are missing: the vision tower's published parameter count; the
    # rest is built with a parameter-free stand-in tower of the same output width.
    vision_published: int = 0


# FastVLM's vision tower (FastViTHD, timm's fastvit_mci3) is a timm model, and timm needs
# torchvision; without them its published size (FastVLM paper, 125.1 M) stands in.
FASTVITHD = {'requires': ('timm',), 'vision_published': 125_100_000}
# SmolVLM / SmolVLM2 checkpoints' processors: longest edge 2048 (1536 for 2.2B) in 512
# (384) px tiles + a global view; a VGA frame is 4 x 3 tiles + 1.
SMOLVLM_VGA = _tiled_tokens(2048, 512, 64)
SMOLVLM_2B_VGA = _tiled_tokens(1536, 384, 81)
QWEN25_VGA = _vga_tokens(28)        # 644x476 -> 23 x 17 merged patches
QWEN3_VGA = _vga_tokens(32)         # 640x480 -> 20 x 15
LFM2_VGA = _vga_tokens(32, 256)     # 576x416 -> 18 x 13 (max_image_tokens 256)

SHAPES = (
    Shape('qwen2.5-vl-3b', 'Qwen2.5-VL', 'Qwen/Qwen2.5-VL-3B-Instruct', qwen25_vl_3b,
          QWEN25_VGA),
    Shape('qwen2.5-vl-7b', 'Qwen2.5-VL', 'Qwen/Qwen2.5-VL-7B-Instruct', qwen25_vl_7b,
          QWEN25_VGA),
    Shape('qwen3-vl-2b', 'Qwen3-VL', 'Qwen/Qwen3-VL-2B-Instruct', qwen3_vl_2b, QWEN3_VGA),
    Shape('qwen3-vl-4b', 'Qwen3-VL', 'Qwen/Qwen3-VL-4B-Instruct', qwen3_vl_4b, QWEN3_VGA),
    Shape('qwen3-vl-8b', 'Qwen3-VL', 'Qwen/Qwen3-VL-8B-Instruct', qwen3_vl_8b, QWEN3_VGA),
    Shape('smolvlm2-256m', 'SmolVLM2', 'HuggingFaceTB/SmolVLM2-256M-Video-Instruct',
          smolvlm2_256m, SMOLVLM_VGA),
    Shape('smolvlm2-500m', 'SmolVLM2', 'HuggingFaceTB/SmolVLM2-500M-Video-Instruct',
          smolvlm2_500m, SMOLVLM_VGA),
    Shape('smolvlm2-2.2b', 'SmolVLM2', 'HuggingFaceTB/SmolVLM2-2.2B-Instruct', smolvlm2_2b,
          SMOLVLM_2B_VGA),
    Shape('gemma-3-4b', 'Gemma 3', 'google/gemma-3-4b-it', gemma3_4b),
    Shape('gemma-3-12b', 'Gemma 3', 'google/gemma-3-12b-it', gemma3_12b),
    Shape('fastvlm-0.5b', 'FastVLM', 'apple/FastVLM-0.5B', fastvlm_05b, **FASTVITHD),
    Shape('fastvlm-1.5b', 'FastVLM', 'apple/FastVLM-1.5B', fastvlm_15b, **FASTVITHD),
    Shape('fastvlm-7b', 'FastVLM', 'apple/FastVLM-7B', fastvlm_7b, **FASTVITHD),
    Shape('lfm2-vl-450m', 'LFM2-VL', 'LiquidAI/LFM2-VL-450M', lfm2_vl_450m, LFM2_VGA),
    Shape('lfm2-vl-1.6b', 'LFM2-VL', 'LiquidAI/LFM2-VL-1.6B', lfm2_vl_16b, LFM2_VGA),
    Shape('smolvlm-256m', 'SmolVLM', 'HuggingFaceTB/SmolVLM-256M-Instruct', smolvlm_256m,
          SMOLVLM_VGA),
    Shape('llava-phi3-mini', 'LLaVA-Phi-3-mini', 'xtuner/llava-phi-3-mini-hf',
          llava_phi3_mini),
    Shape('llava-1.5-7b', 'LLaVA-1.5', 'llava-hf/llava-1.5-7b-hf', llava_15_7b),
    Shape('bakllava-7b', 'BakLLaVA', 'llava-hf/bakLlava-v1-hf', bakllava),
    Shape('blip2-opt-2.7b', 'BLIP-2', 'Salesforce/blip2-opt-2.7b', blip2_opt_27b),
)
BY_NAME: Dict[str, Shape] = {s.name: s for s in SHAPES}


def buildable(shape: Shape) -> bool:
    """Return whether the packages the shape's classes need are installed."""
    import importlib.util
    return all(importlib.util.find_spec(name) is not None for name in shape.requires)


def _stand_in_tower(config: Any) -> Any:
    """Return the config with a vision tower of the same output width and no real layers."""
    import copy
    from transformers import CLIPVisionConfig
    width = config.vision_config.hidden_size
    config = copy.deepcopy(config)
    config.vision_config = CLIPVisionConfig(hidden_size=width, num_hidden_layers=0,
                                            intermediate_size=1, num_attention_heads=1,
                                            image_size=16, patch_size=16)
    return config


def find(name: str) -> List[Shape]:
    """
    Return the shapes a name means: a shape's name or hub id, or a family (all its sizes).

    Case-insensitive; [] when the name is none of these.
    """
    key = name.strip().lower()
    exact = [s for s in SHAPES if key in (s.name, s.model_id.lower())]
    if exact:
        return exact

    def norm(text):
        return text.lower().replace(' ', '-').replace('_', '-')
    return [s for s in SHAPES if norm(s.family) == norm(key)]


# ---- the estimate -------------------------------------------------------------------------
@dataclass(frozen=True)
class Fit:
    """One model's memory at each precision and the boards it fits."""

    name: str
    model_id: str
    family: str
    parameters: int
    vision_parameters: int
    image_tokens: int
    context_tokens: int             # image tokens + registry.TEXT_TOKENS
    kv_cache_bytes: int             # one request, 16-bit cache
    total_bytes: Dict[str, int]     # per precision: weights + KV cache of one request

    def fits(self, precision: str, board: Board) -> bool:
        return self.total_bytes[precision] * MEMORY_HEADROOM <= board.budget_bytes

    def boards(self, precision: str) -> List[str]:
        return [b.name for b in BOARDS if self.fits(precision, b)]


def _structure(config: Any) -> Tuple[int, int]:
    """
    Return (vision tower parameters, quantizable weights) of the model a config describes.

    Quantizable: the Linear and Embedding weights, each tensor once (a tied LM head is the
    embedding's tensor). The model is the registry's ``meta``-device one.
    """
    import torch
    model = registry._meta_model(config)
    vision = 0
    for path in ('model.vision_tower', 'model.visual', 'vision_tower', 'vision_model',
                 'model.vision_model', 'visual'):
        module = model
        for part in path.split('.'):
            module = getattr(module, part, None)
        if module is not None:
            vision = int(sum(p.numel() for p in module.parameters()))
            break
    weights = {id(m.weight): m.weight.numel() for m in model.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))}
    return vision, int(sum(weights.values()))


def estimate(config: Any, image_tokens: Optional[int] = None, name: str = '',
             model_id: str = '', family: str = '', vision_published: int = 0) -> Fit:
    """
    Return a model's memory per precision from its config (the registry's estimate).

    ``image_tokens`` overrides the registry's count from the config (for families whose
    image size follows the frame). ``vision_published``: the config's vision tower cannot be
    built here; the registry estimates the rest with a stand-in tower whose parameters are
    replaced by this count (16-bit in every precision: a convolutional tower, not quantized).
    """
    table = registry.memory_by_dtype(config)
    f32, b16 = table['float32'], table['bfloat16']
    floats = f32.weights_bytes // 4     # parameters and floating buffers
    vision, quantized = _structure(config)
    parameters = f32.parameters
    tokens = registry.image_tokens(config) if image_tokens is None else image_tokens
    context = tokens + registry.TEXT_TOKENS if b16.context_tokens else 0
    kv = context * registry.kv_cache_bytes_per_token(config, 'bfloat16')
    if vision_published:
        # The stand-in's parameters are its patch embedding (one Linear-free Conv2d) and
        # layer norms: take them out, put the published tower in.
        parameters += vision_published - vision
        floats += vision_published - vision
        vision = vision_published
    totals = {'float32': 4 * floats + 2 * kv, 'bfloat16': 2 * floats + kv}
    for precision, per_weight in QUANT_BYTES.items():
        totals[precision] = int(quantized * per_weight) + 2 * (floats - quantized) + kv
    return Fit(name=name, model_id=model_id, family=family, parameters=parameters,
               vision_parameters=vision, image_tokens=tokens, context_tokens=context,
               kv_cache_bytes=kv, total_bytes=totals)


def shape_fit(shape: Shape) -> Fit:
    """Return the estimate of a published shape (a stand-in tower where it cannot be built)."""
    config = shape.build()
    published = 0
    if not buildable(shape):
        config, published = _stand_in_tower(config), shape.vision_published
    return estimate(config, shape.image_tokens, shape.name, shape.model_id, shape.family,
                    published)


def fits(shapes: Sequence[Shape] = SHAPES) -> List[Fit]:
    """Return the estimate of every shape."""
    return [shape_fit(s) for s in shapes]


# ---- the table ----------------------------------------------------------------------------
def _size(n: float) -> str:
    return f'{n / 1e9:.2f} B' if n >= 1e9 else f'{n / 1e6:.0f} M'


def _gib(n: float) -> str:
    return f'{n / GIB:.1f}'


def best_precision(fit: Fit, board: Board) -> str:
    """Return the widest precision (float32 first) the model fits a board at; '-' for none."""
    return next((SHORT[p] for p in PRECISIONS if fit.fits(p, board)), '-')


SHORT = {'float32': 'fp32', 'bfloat16': 'bf16', 'int8': 'int8', 'int4': 'int4'}


def markdown_table(rows: Optional[Sequence[Fit]] = None) -> str:
    """
    Write the docs' two "what fits where" tables from the estimates.

    The first gives each model's size and GiB per precision, the second the widest
    precision each board runs it at.
    """
    rows = fits() if rows is None else rows
    head = ['model', 'config from', 'parameters (vision tower)', 'tokens: image + text',
            'KV cache (16-bit)'] + [f'{SHORT[p]} GiB' for p in PRECISIONS]
    lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for f in rows:
        vision = _size(f.vision_parameters) + ('*' if f.name in _PUBLISHED_TOWER else '')
        cells = [f.name, f'`{f.model_id}`', f'{_size(f.parameters)} ({vision})',
                 f'{f.image_tokens} + {f.context_tokens - f.image_tokens}',
                 f'{f.kv_cache_bytes / 2 ** 20:.0f} MiB']
        cells += [_gib(f.total_bytes[p]) for p in PRECISIONS]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines += ['', '| model | ' + ' | '.join(b.name for b in BOARDS) + ' |',
              '|' + '---|' * (len(BOARDS) + 1)]
    for f in rows:
        lines.append(f'| {f.name} | ' + ' | '.join(best_precision(f, b) for b in BOARDS)
                     + ' |')
    return '\n'.join(lines) + '\n'


_PUBLISHED_TOWER = {s.name for s in SHAPES if s.vision_published and not buildable(s)}


def boards_table(rows: Sequence[Fit]) -> str:
    """Write a plain-text table: each model and precision, GiB and the boards it fits."""
    out = []
    for f in rows:
        out.append(f'{f.name} ({f.model_id}): {_size(f.parameters)} parameters, vision '
                   f'{_size(f.vision_parameters)}, one request {f.image_tokens} image + '
                   f'{f.context_tokens - f.image_tokens} text tokens, KV cache '
                   f'{f.kv_cache_bytes / 2 ** 20:.0f} MiB (16-bit)')
        for p in PRECISIONS:
            where = ', '.join(f.boards(p)) or 'none of the boards'
            out.append(f'  {p:9s} {_gib(f.total_bytes[p]):>6s} GiB  fits: {where}')
    return '\n'.join(out)
