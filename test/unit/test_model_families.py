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
Every registry family, built small from its real transformers classes, through load_backend.

The small models have random weights; tokenizer and processor are made here, saved and
loaded back with from_pretrained. Memory numbers are checked against built models and
against published model shapes on the meta device. No ROS here;
test_model_families_ros.py runs the same models through vlm_node.
"""

import json
import os
from pathlib import Path
import subprocess
import sys

from conftest import language_model
from hub_cache import into_hub_cache
import numpy as np
import pytest

from vlm_nav.models import (fit, hf_backend, load_backend, make_backend, onnx_scoring,
                            registry)
from vlm_nav.models.base import ModelLoadError, UnsupportedOperation
from vlm_nav.models.hf_backend import _to_pil, ContrastiveBackend, HFBackend
from vlm_nav.models.prompting import chat_prompt
from vlm_nav.perception.vocabulary import DESCRIBE_PROMPT, target_questions
from vlm_nav.testing import tiny

GENERATIVE = [f.name for f in registry.FAMILIES
              if f.backend == registry.GENERATIVE and f.name in tiny.BUILDERS]
CONTRASTIVE = [f.name for f in registry.FAMILIES if f.backend == registry.CONTRASTIVE]
THINGS = ('What is in view?', ('red ball', 'door', 'blue box'))
MULTI_TOKEN = ('What is it?', ('red ball', 'red box', 'door', 'purple thing'))


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def image():
    return np.random.default_rng(1).integers(0, 256, (72, 96, 3), dtype=np.uint8)


def _distribution(answer, choices):
    assert answer.choices == list(choices)
    assert all(0.0 <= p <= 1.0 for p in answer.probs)
    assert sum(answer.probs) == pytest.approx(1.0, abs=1e-6)


def test_every_family_but_generic_has_a_small_model():
    assert set(tiny.BUILDERS) | set(tiny.UNBUILT) == \
        {f.name for f in registry.FAMILIES} - {'generic'}
    assert len(registry.BY_NAME) == len(registry.FAMILIES)


@pytest.mark.parametrize('name', sorted(tiny.BUILDERS))
def test_family_is_picked_from_the_config(backends, name):
    backend = backends(name)
    family = registry.BY_NAME[name]
    assert backend.family is family
    assert registry.family_for(backend.model.config) is family
    expected = HFBackend if family.backend == registry.GENERATIVE else ContrastiveBackend
    assert type(backend) is expected
    # The class the registry names is the one that loaded it (Auto* resolves to the saved one).
    assert type(backend.model).__name__ in (family.model_class,
                                            *backend.model.config.architectures)
    assert backend.operations == family.operations


@pytest.mark.parametrize('name', GENERATIVE)
def test_generative_prompt_is_the_family_template(backends, name):
    backend = backends(name)
    family = backend.family
    question = 'Is there a red ball?'
    # Tiny processors carry the family's template as a chat template, as hub ones do;
    # the registry template is what a processor without one gets.
    assert chat_prompt(backend.processor, question, family.prompt_template) == \
        family.prompt(question)
    assert backend._prompt(question) == family.prompt(question)


@pytest.mark.parametrize('name', GENERATIVE)
def test_generative_score_matches_naive_reference(backends, name, image):
    backend = backends(name)
    questions = [THINGS, MULTI_TOKEN] + target_questions('red ball')
    fast = backend.score(image, questions)
    ref = backend._reference_score(image, questions)
    for answer, reference, (_, choices) in zip(fast, ref, questions):
        _distribution(answer, choices)
        np.testing.assert_allclose(answer.probs, reference.probs, atol=1e-4)
    # Random but not flat, so the comparison means something.
    assert max(max(a.probs) for a in ref) > 0.6


# Families whose closed-set questions run as one packed pass: ONNX Runtime can take it.
PACKED = [f.name for f in registry.FAMILIES if f.name in GENERATIVE and f.shared_prefix
          and not f.image_reads_question and f.name not in ('idefics3', 'smolvlm')]


@pytest.mark.parametrize('name', PACKED)
def test_onnxruntime_scoring_matches_the_naive_reference(family_model_dir, name, image):
    backend = make_backend(family_model_dir(name), runtime='onnxruntime')
    backend.load()
    assert backend.diagnostics()['scoring_runtime'] == 'onnxruntime'
    questions = [THINGS, MULTI_TOKEN] + target_questions('blue box')
    calls = []
    run = backend.onnx.run
    backend.onnx.run = lambda inputs: calls.append(1) or run(inputs)
    fast = backend.score(image, questions)
    assert calls, 'the packed pass did not run in ONNX Runtime'
    # A different packed width and kept positions than the export sample had.
    for answer, reference in zip(fast, backend._reference_score(image, questions)):
        np.testing.assert_allclose(answer.probs, reference.probs, atol=1e-4)


def test_exported_scoring_pass_is_cached_by_its_weights(family_model_dir, image,
                                                        tmp_path, monkeypatch):
    """
    Load the same weights twice: the second load takes the graph from the cache.

    Other weights don't; a damaged cached file is exported afresh; VLM_NAV_CACHE=off keeps
    nothing.
    """
    import torch
    monkeypatch.setenv('VLM_NAV_CACHE', str(tmp_path))
    folder = family_model_dir('llava')
    questions = target_questions('blue box')

    def loaded(runtime='onnxruntime_int8'):
        backend = make_backend(folder, runtime=runtime)
        backend.load()
        return backend

    first, second = loaded(), loaded()
    assert not first.onnx.from_cache and second.onnx.from_cache
    for a, b in zip(first.score(image, questions), second.score(image, questions)):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-6)
    files = sorted((tmp_path / 'onnx').glob('*.onnx'))
    assert len(files) == 1, files
    assert not loaded('onnxruntime').onnx.from_cache        # float32: another graph
    changed = loaded('torch')
    with torch.no_grad():
        next(changed.model.parameters()).mul_(1.5)
    changed.export_scoring(quantize=True)
    assert not changed.onnx.from_cache                      # other weights, another key
    files[0].write_bytes(b'not a graph')
    again = loaded()
    assert not again.onnx.from_cache and files[0].stat().st_size > 1000
    monkeypatch.setenv('VLM_NAV_CACHE', 'off')
    assert onnx_scoring.cache_dir() is None


@pytest.mark.parametrize('name', ['clip', 'instructblip', 'idefics3', 'smolvlm', 'qwen2_5_vl'])
def test_onnxruntime_refused_where_there_is_no_packed_pass_with_the_fix(family_model_dir,
                                                                        name):
    with pytest.raises(ModelLoadError, match='runtime torch'):
        make_backend(family_model_dir(name), runtime='onnxruntime_int8').load()


def test_runtime_auto_scores_other_models_in_torch(backends):
    # auto picks ONNX Runtime only for the embedded model, where it was measured.
    assert backends('llava').diagnostics()['scoring_runtime'] == 'torch'
    assert backends('llava').onnx is None


def test_unknown_runtime_is_refused(family_model_dir):
    with pytest.raises(ValueError, match='auto, torch, onnxruntime'):
        make_backend(family_model_dir('llava'), runtime='tensorrt')


@pytest.mark.parametrize('name', GENERATIVE)
def test_generative_ask_and_describe_texts(backends, name, image):
    backend = backends(name)
    ids = backend.generate_ids(image, DESCRIBE_PROMPT, 5)
    assert 1 <= len(ids) <= 5
    text = backend.generate(image, 'What is in view?', 5)
    assert isinstance(text, str) and text == text.strip()
    for op in (registry.DESCRIBE, registry.ASK, registry.SCORE):
        backend.require(op)


def test_clip_scores_choices_as_zero_shot_classes(backends, image):
    import torch
    clip = backends('clip')
    answer = clip.score(image, [THINGS])[0]
    _distribution(answer, THINGS[1])
    # The same numbers straight from CLIPModel: softmax over logits_per_image.
    texts = [f'a photo of a {c}' for c in THINGS[1]]
    inputs = clip.processor(images=_to_pil(image), text=texts, return_tensors='pt',
                            padding=True)
    with torch.inference_mode():
        expected = clip.model(**inputs).logits_per_image.softmax(-1)[0].tolist()
    np.testing.assert_allclose(answer.probs, expected, atol=1e-5)
    assert max(answer.probs) - min(answer.probs) > 0.01    # the random texts differ
    # Several questions in one call give the same per-question answers.
    both = clip.score(image, [THINGS, ('Which?', ('door', 'table'))])
    np.testing.assert_allclose(both[0].probs, answer.probs, atol=1e-5)
    _distribution(both[1], ('door', 'table'))


def test_clip_refuses_text_and_yes_no_with_the_reason(backends, image):
    clip = backends('clip')
    with pytest.raises(UnsupportedOperation, match='cannot ask: it generates no text'):
        clip.generate(image, DESCRIBE_PROMPT, 8)
    with pytest.raises(UnsupportedOperation, match='no yes/no questions'):
        clip.score(image, [('Is there a red ball?', ('yes', 'no'))])
    with pytest.raises(UnsupportedOperation, match='cannot describe'):
        clip.require(registry.DESCRIBE)


def test_blip2_itm_answers_is_there_with_its_matching_head(backends, image):
    import torch
    itm = backends('blip-2-itm')
    yes_no, things = itm.score(image, [('Is there a red ball?', ('yes', 'no')), THINGS])
    _distribution(yes_no, ('yes', 'no'))
    _distribution(things, THINGS[1])
    inputs = itm.processor(images=_to_pil(image), text=['a photo of a red ball'],
                           return_tensors='pt')
    with torch.inference_mode():
        logits = itm.model(**inputs, use_image_text_matching_head=True).logits_per_image
    assert yes_no.probs[0] == pytest.approx(float(logits.softmax(-1)[0, 1]), abs=1e-5)
    # Order of the choices follows the request.
    no_yes = itm.score(image, [('Is there a red ball?', ('no', 'yes'))])[0]
    assert no_yes.probs == pytest.approx(yes_no.probs[::-1])
    with pytest.raises(UnsupportedOperation, match="only 'Is there a"):
        itm.score(image, [('Is the path ahead clear?', ('yes', 'no'))])
    with pytest.raises(UnsupportedOperation, match='cannot ask'):
        itm.generate(image, 'Is there a door?', 4)


def test_instructblip_image_inputs_follow_the_question(backends, image):
    # The Q-Former reads the question: scoring two questions together must equal scoring
    # each alone (a shared image encoding would give the first question's to both).
    ib = backends('instructblip')
    questions = target_questions('door')[:2]
    together = ib.score(image, questions)
    for answer, question in zip(together, questions):
        alone = ib.score(image, [question])[0]
        np.testing.assert_allclose(answer.probs, alone.probs, atol=1e-5)


# ---- memory ---------------------------------------------------------------------------------
@pytest.mark.parametrize('name', sorted(tiny.BUILDERS))
def test_memory_estimate_matches_the_built_model(backends, name):
    import torch
    backend = backends(name)
    model = backend.model
    n = sum(p.numel() for p in model.parameters())
    table = registry.memory_by_dtype(model.config)
    assert set(table) == set(registry.PRECISIONS)
    eight_bit = sum(m.weight.numel() for m in model.modules()
                    if isinstance(m, (torch.nn.Linear, torch.nn.Embedding)))
    floats = table['float32'].weights_bytes // 4
    assert table['int8'].weights_bytes == eight_bit + 4 * (floats - eight_bit)
    assert table['float32'].parameters == n == registry.parameter_count(model.config)
    f32 = table['float32'].weights_bytes
    assert 4 * n <= f32 < 4 * n * 1.01           # plus small float buffers
    assert table['bfloat16'].weights_bytes * 2 == f32 == table['float16'].weights_bytes * 2
    assert f32 == registry.estimate_memory_bytes(model.config, 'float32')
    per_token = registry.kv_cache_bytes_per_token(model.config, 'float32')
    if backend.family.backend == registry.CONTRASTIVE:
        assert per_token == 0 and table['float32'].kv_cache_bytes == 0
        return
    # The estimate equals what a real forward pass caches.
    seq = 7
    with torch.inference_mode():
        out = language_model(model)(input_ids=torch.ones((1, seq), dtype=torch.long),
                                    use_cache=True)
    cached = sum(t.numel() * t.element_size()
                 for layer in out.cache.layers for t in (layer.keys, layer.values))
    assert per_token * seq == cached
    assert table['float32'].context_tokens == \
        registry.image_tokens(model.config) + registry.TEXT_TOKENS
    assert table['float16'].kv_cache_bytes * 2 == table['float32'].kv_cache_bytes


@pytest.mark.parametrize('name', sorted(tiny.BUILDERS))
def test_fit_table_matches_the_built_model(backends, name):
    """The rows `vlm-nav doctor` prints (vlm_nav.models.fit) against the model as built."""
    import copy
    import torch
    model = backends(name).model
    row = fit.estimate(model.config)
    n = sum(p.numel() for p in model.parameters())
    assert row.parameters == n
    kv = row.kv_cache_bytes
    # float32 and bfloat16: the built model's weights in each dtype, within the estimate's
    # allowance for small float buffers (as above).
    for precision, dtype, size in (('float32', torch.float32, 4),
                                   ('bfloat16', torch.bfloat16, 2)):
        cast = copy.deepcopy(model).to(dtype)
        weights = sum(p.numel() * p.element_size() for p in cast.parameters())
        assert weights == size * n
        estimate = row.total_bytes[precision] - (2 if precision == 'float32' else 1) * kv
        assert weights <= estimate < weights * 1.01, precision
    # int8 / int4 quantize each Linear and Embedding weight once (tied ones share a tensor).
    quantized = {id(m.weight): m.weight.numel() for m in model.modules()
                 if isinstance(m, (torch.nn.Linear, torch.nn.Embedding))}
    q = sum(quantized.values())
    rest = row.total_bytes['bfloat16'] - kv - 2 * q
    assert row.total_bytes['int8'] == q + rest + kv
    assert row.total_bytes['int4'] == int(q * fit.QUANT_BYTES['int4']) + rest + kv
    if backends(name).family.backend == registry.CONTRASTIVE:
        assert kv == 0
        return
    # The KV cache of one request: what a forward over that many tokens caches, at 16 bits.
    assert row.context_tokens == registry.image_tokens(model.config) + registry.TEXT_TOKENS
    seq = row.context_tokens
    with torch.inference_mode():
        out = language_model(model)(input_ids=torch.ones((1, seq), dtype=torch.long),
                                    use_cache=True)
    cached = sum(t.numel() * t.element_size()
                 for layer in out.cache.layers for t in (layer.keys, layer.values))
    # Sliding-window layers (Gemma 3) keep the window's last tokens (window - 1: the next
    # token makes it whole): the estimate, every layer at the full request, is exact up to
    # the window (1024 in the published Gemma 3 sizes, longer than one request there) and
    # an upper bound past it.
    text = getattr(model.config, 'text_config', None) or model.config
    window = getattr(text, 'sliding_window', None)
    types = getattr(text, 'layer_types', None) or []
    per_layer = 2 * kv // (seq * text.num_hidden_layers)       # float32: twice the table
    kept = [min(seq, window - 1) if t == 'sliding_attention' and window else seq
            for t in types]
    assert cached == (per_layer * sum(kept) if types else 2 * kv)
    assert cached <= 2 * kv


def _llava_15_7b():
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                              num_attention_heads=16, image_size=336, patch_size=14,
                              projection_dim=768)
    text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008,
                       num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                       max_position_embeddings=4096)
    return LlavaConfig(vision_config=vision, text_config=text, image_token_id=32000,
                       image_seq_length=576, vision_feature_layer=-2)


def _blip2_opt_27b():
    from transformers import Blip2Config, OPTConfig
    text = OPTConfig(vocab_size=50304, hidden_size=2560, ffn_dim=10240, num_hidden_layers=32,
                     num_attention_heads=32, word_embed_proj_dim=2560,
                     max_position_embeddings=2048)
    return Blip2Config(text_config=text)   # ViT-g and Q-Former are the defaults


def _clip_b32():
    from transformers import CLIPConfig
    return CLIPConfig()                    # the defaults are ViT-B/32


# (config, family, published parameter count): llava-hf/llava-1.5-7b-hf 7.06 B,
# Salesforce/blip2-opt-2.7b 3.74 B, openai/clip-vit-base-patch32 151.28 M.
PUBLISHED = {
    'llava-1.5-7b': (_llava_15_7b, 'llava', 7.06e9),
    'blip2-opt-2.7b': (_blip2_opt_27b, 'blip-2', 3.74e9),
    'clip-vit-base-patch32': (_clip_b32, 'clip', 151.28e6),
}


@pytest.mark.parametrize('shape', sorted(PUBLISHED))
def test_memory_of_published_shapes(shape):
    make, family, published = PUBLISHED[shape]
    config = make()
    assert registry.family_for(config).name == family
    table = registry.memory_by_dtype(config)
    n = table['float16'].parameters
    assert n == pytest.approx(published, rel=0.01)
    assert table['float16'].weights_bytes == pytest.approx(2 * published, rel=0.01)
    assert table['float32'].weights_bytes == pytest.approx(4 * published, rel=0.01)


def test_llava_7b_kv_cache_per_request():
    table = registry.memory_by_dtype(_llava_15_7b())
    # 32 layers x (K + V) x 32 heads x 128 dims x 2 bytes = 0.5 MiB per token at fp16;
    # one request = 576 image tokens + the text allowance.
    assert registry.kv_cache_bytes_per_token(_llava_15_7b(), 'float16') == 2 ** 19
    fp16 = table['float16']
    assert fp16.context_tokens == 576 + registry.TEXT_TOKENS
    assert fp16.kv_cache_bytes == fp16.context_tokens * 2 ** 19
    assert fp16.total_bytes == fp16.weights_bytes + fp16.kv_cache_bytes


def test_llava_text_model_picks_the_variant():
    from transformers import CLIPVisionConfig, LlavaConfig, MistralConfig, Phi3Config
    small = {'hidden_size': 64, 'intermediate_size': 128, 'num_hidden_layers': 1,
             'num_attention_heads': 4, 'num_key_value_heads': 2, 'vocab_size': 100}
    for text, family in ((MistralConfig(**small), 'bakllava'), (Phi3Config(**small),
                                                                'llava-phi3')):
        config = LlavaConfig(vision_config=CLIPVisionConfig(), text_config=text)
        assert registry.family_for(config).name == family


# ---- loading by hub id --------------------------------------------------------------------
def test_hub_id_loads_through_the_same_path_as_a_folder(family_model_dir, backends, image,
                                                        tmp_path):
    cache = tmp_path / 'hub'
    repos = {'clip': 'vlm-nav-test/tiny-clip', 'blip-2': 'vlm-nav-test/tiny-blip2'}
    for name, repo in repos.items():
        into_hub_cache(family_model_dir(name), cache, repo)
    np.save(tmp_path / 'image.npy', image)
    script = (
        'import json, sys, numpy as np, torch\n'
        'torch.set_num_threads(1)\n'
        'from vlm_nav.models import load_backend\n'
        'image = np.load(sys.argv[1]); out = {}\n'
        'for repo in sys.argv[2:]:\n'
        '    b = load_backend(repo)\n'
        "    q = [('What is in view?', ('red ball', 'door', 'blue box'))]\n"
        '    out[repo] = [b.family.name, b.name, b.score(image, q)[0].probs]\n'
        'print(json.dumps(out))\n')
    env = dict(os.environ, HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE='1')
    run = subprocess.run([sys.executable, '-c', script, str(tmp_path / 'image.npy'),
                          *repos.values()], env=env, capture_output=True, text=True,
                         timeout=180)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    for name, repo in repos.items():
        family, model_name, probs = result[repo]
        assert family == name and model_name == repo
        expected = backends(name).score(image, [THINGS])[0].probs
        np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_models_doc_table_is_the_registry():
    models_doc = (Path(__file__).resolve().parents[2] / 'docs' / 'models.md').read_text()
    assert registry.markdown_table() in models_doc


def test_encoder_decoder_language_model_is_refused(tmp_path):
    from transformers import Blip2Config, T5Config
    text = T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    Blip2Config(text_config=text).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match='encoder-decoder language model'):
        load_backend(str(tmp_path))


def test_model_that_does_not_fit_is_refused_before_loading(family_model_dir, monkeypatch):
    folder = family_model_dir('blip-2')
    monkeypatch.setattr(hf_backend, '_mem_available_bytes', lambda: 1024)
    with pytest.raises(ModelLoadError, match=r'weights and one request of KV cache\) in '
                                             'float32 but only 0.0 GiB is free'):
        load_backend(folder)


@pytest.mark.parametrize('name', sorted(tiny.BUILDERS))
def test_score_batch_equals_one_request_at_a_time(backends, name):
    """
    Score several images (cameras) in one batch: each gets the answers it gets alone.

    On the shared-prefix path (one prefill row per image) and on the full path.
    """
    backend = backends(name)
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(3)]
    if backend.family.backend == registry.CONTRASTIVE:
        questions = [[THINGS], [('Which?', ('door', 'table'))], [THINGS]]
    else:
        questions = [target_questions('red ball'), target_questions('door') + [MULTI_TOKEN],
                     target_questions('red ball')]
    alone = [backend.score(image, qs) for image, qs in zip(images, questions)]
    paths = [True, False] if backend.family.shared_prefix else [True]
    for share in paths:
        backend.share_prefix = share
        try:
            batch = backend.score_batch(list(zip(images, questions)))
        finally:
            backend.share_prefix = True
        for got, expected in zip(batch, alone):
            for a, b in zip(got, expected):
                assert a.choices == b.choices
                np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
    # Requests 0 and 2 ask the same about different images and get different answers, so
    # rows given the wrong image would show.
    assert any(a.probs != b.probs for a, b in zip(alone[0], alone[2]))
