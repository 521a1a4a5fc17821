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
What fits where (vlm_nav.models.fit): published shapes, their memory, the boards, the docs.

The shapes are configs built here with published dimensions; their parameter counts are
checked against the counts the model cards publish, and the docs' table against the code.
"""

from pathlib import Path

import pytest

from vlm_nav.models import fit, registry

GIB = 2 ** 30

# Parameter counts the model cards publish (hub page, safetensors total), in the order of
# fit.SHAPES. FastVLM's cards give none for the checkpoint's parts; its language models
# are Qwen2-0.5B/1.5B/7B and its tower is checked below.
PUBLISHED = {
    'qwen2.5-vl-3b': 3.75e9, 'qwen2.5-vl-7b': 8.29e9,
    'qwen3-vl-2b': 2.13e9, 'qwen3-vl-4b': 4.44e9, 'qwen3-vl-8b': 8.77e9,
    'smolvlm2-256m': 256e6, 'smolvlm2-500m': 507e6, 'smolvlm2-2.2b': 2.25e9,
    'gemma-3-4b': 4.30e9, 'gemma-3-12b': 12.2e9,
    'lfm2-vl-450m': 451e6, 'lfm2-vl-1.6b': 1.58e9,
    'smolvlm-256m': 256e6, 'llava-phi3-mini': 4.14e9, 'llava-1.5-7b': 7.06e9,
    'bakllava-7b': 7.57e9, 'blip2-opt-2.7b': 3.74e9,
}


@pytest.fixture(scope='module')
def rows():
    return {f.name: f for f in fit.fits()}


def test_every_shape_is_listed_once_and_found_by_name_and_id():
    names = [s.name for s in fit.SHAPES]
    assert len(names) == len(set(names))
    for shape in fit.SHAPES:
        assert fit.find(shape.name) == [shape]
        assert fit.find(shape.model_id.upper()) == [shape]
    assert [s.name for s in fit.find('Qwen3-VL')] == ['qwen3-vl-2b', 'qwen3-vl-4b',
                                                      'qwen3-vl-8b']
    assert len(fit.find('gemma 3')) == 2
    assert fit.find('no-such-model') == []


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_shape_has_the_published_parameter_count(rows, name):
    assert rows[name].parameters == pytest.approx(PUBLISHED[name], rel=0.006)


def test_fastvlm_is_its_qwen2_language_model_plus_tower_and_projector(rows):
    # Qwen2-0.5B / 1.5B / 7B: 494 M, 1.54 B, 7.62 B; projector 3072 -> d -> d.
    for name, lm in (('fastvlm-0.5b', 494e6), ('fastvlm-1.5b', 1.54e9), ('fastvlm-7b', 7.62e9)):
        row = rows[name]
        assert row.vision_parameters == pytest.approx(125.1e6, rel=0.01)
        assert row.parameters - row.vision_parameters == pytest.approx(lm, rel=0.01)
        assert row.image_tokens == 256


def test_fastvlm_tower_where_timm_builds_it():
    pytest.importorskip('timm')
    shape = fit.BY_NAME['fastvlm-0.5b']
    vision, _ = fit._structure(shape.build())
    assert vision == pytest.approx(shape.vision_published, rel=0.01)


def test_image_tokens_of_a_camera_frame_are_the_processors():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
    width, height = fit.CAMERA_FRAME
    for factor, tokens in ((28, fit.QWEN25_VGA), (32, fit.QWEN3_VGA)):
        h, w = smart_resize(height, width, factor=factor, min_pixels=56 * 56,
                            max_pixels=12845056)
        assert tokens == (h // factor) * (w // factor)
    # LFM2-VL's smart_resize, as Lfm2VlImageProcessor has it (that module needs torchvision):
    # floored to 32 px at the scale that brings the frame to 256 tokens.
    beta = ((width * height) / (256 * 32 ** 2)) ** 0.5
    assert fit.LFM2_VGA == (int(height / beta / 32)) * (int(width / beta / 32)) <= 256
    import numpy as np
    from PIL import Image
    from transformers import Idefics3ImageProcessorPil, SmolVLMImageProcessorPil
    frame = Image.fromarray(np.zeros((height, width, 3), np.uint8))
    for cls, edge, tile, per_tile, tokens in (
            (SmolVLMImageProcessorPil, 2048, 512, 64, fit.SMOLVLM_VGA),
            (SmolVLMImageProcessorPil, 1536, 384, 81, fit.SMOLVLM_2B_VGA),
            (Idefics3ImageProcessorPil, 2048, 512, 64, fit.SMOLVLM_VGA)):
        processor = cls(do_image_splitting=True, size={'longest_edge': edge},
                        max_image_size={'longest_edge': tile})
        tiles = processor(images=[[frame]], return_tensors='np')['pixel_values'].shape[1]
        assert tokens == tiles * per_tile
    for shape in fit.SHAPES:
        if shape.image_tokens is None:
            assert registry.image_tokens(shape.build()) > 0, shape.name


def test_memory_is_the_registry_estimate(rows):
    row = rows['llava-1.5-7b']
    table = registry.memory_by_dtype(fit.llava_15_7b())
    # fp16 weights and KV cache exactly as the registry gives them (576 image tokens).
    assert row.total_bytes['bfloat16'] == table['bfloat16'].total_bytes
    assert row.kv_cache_bytes == (576 + registry.TEXT_TOKENS) * 2 ** 19
    assert row.total_bytes['float32'] == table['float32'].weights_bytes + 2 * row.kv_cache_bytes
    # Every Linear and Embedding weight of LLaVA-1.5-7B but the vision tower's patch
    # convolution and the norms: int8 a bit over half of bf16, int4 a bit over a quarter.
    weights = table['bfloat16'].weights_bytes
    int8 = row.total_bytes['int8'] - row.kv_cache_bytes
    int4 = row.total_bytes['int4'] - row.kv_cache_bytes
    assert 0.5 < int8 / weights < 0.51
    assert 0.265 < int4 / weights < 0.28


def test_tied_lm_head_is_counted_once(rows):
    import torch
    config = fit.qwen3_vl_2b()           # tie_word_embeddings: the LM head is the embedding
    model = registry._meta_model(config)
    assert model.lm_head.weight is model.model.language_model.embed_tokens.weight
    unique = {id(m.weight): m.weight.numel() for m in model.modules()
              if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))}
    assert fit._structure(config)[1] == sum(unique.values())
    row = rows['qwen3-vl-2b']
    floats = registry.memory_by_dtype(config)['float32'].weights_bytes // 4
    quantized = sum(unique.values())
    assert row.total_bytes['int8'] == quantized + 2 * (floats - quantized) + row.kv_cache_bytes


def test_boards_and_what_fits():
    by_name = {b.name: b for b in fit.BOARDS}
    nano = by_name['Orin Nano 8 GB']
    assert nano.shared and nano.budget_bytes == int(5.5 * GIB)
    assert by_name['24 GB GPU'].budget_bytes == int(23.5 * GIB)
    qwen = fit.shape_fit(fit.BY_NAME['qwen2.5-vl-7b'])
    # 15.5 GiB in bf16 x 1.2 headroom: over a 16 GB card, inside a 24 GB one.
    assert not qwen.fits('bfloat16', by_name['16 GB GPU'])
    assert qwen.fits('bfloat16', by_name['24 GB GPU'])
    assert fit.best_precision(qwen, nano) == 'int4'
    for row in fit.fits(fit.find('qwen3-vl')):
        sizes = [row.total_bytes[p] for p in fit.PRECISIONS]
        assert sizes == sorted(sizes, reverse=True)
        for precision in fit.PRECISIONS:      # a bigger board of the same kind fits too
            for kind in (True, False):
                fitting = [row.fits(precision, b) for b in fit.BOARDS if b.shared is kind]
                assert fitting == sorted(fitting)


def test_models_doc_has_the_fit_table():
    doc = (Path(__file__).resolve().parents[2] / 'docs' / 'models.md').read_text()
    assert fit.markdown_table() in doc
