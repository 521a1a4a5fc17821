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

"""HFBackend on small random-weight models of real transformers classes (no mocks)."""

import os
import time

import numpy as np
import pytest

from vlm_nav.models import load_backend, registry
from vlm_nav.models.base import ModelLoadError
from vlm_nav.models.hf_backend import _to_pil, HFBackend
from vlm_nav.models.packing import block_layout, block_mask
from vlm_nav.perception.vocabulary import DESCRIBE_PROMPT, target_questions
from vlm_nav.testing.tiny import build_tiny_generic

ATOL = 1e-4

MULTI_TOKEN = [
    ('What is it?', ('red ball', 'red box', 'door', 'purple thing')),
    ('Is there a door?', ('yes', 'no')),
    ('Where is the green cone?', ('left', 'center', 'right', 'not in view')),
]


pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def llava_dir(tiny_llava_dir):
    return tiny_llava_dir  # conftest's session model (build_tiny_llava)


@pytest.fixture(scope='module')
def llava(llava_dir):
    backend = HFBackend(llava_dir)
    backend.load()
    return backend


@pytest.fixture(scope='module')
def generic(tmp_path_factory):
    backend = HFBackend(build_tiny_generic(tmp_path_factory.mktemp('models') / 'tiny-idefics3'))
    backend.load()
    return backend


@pytest.fixture(scope='module')
def image():
    return np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)


def _assert_close(fast, ref):
    assert [a.choices for a in fast] == [a.choices for a in ref]
    for f, r in zip(fast, ref):
        np.testing.assert_allclose(f.probs, r.probs, atol=ATOL)


def _assert_distributions(answers, questions):
    assert len(answers) == len(questions)
    for answer, (_, choices) in zip(answers, questions):
        assert answer.choices == list(choices)
        assert all(0.0 <= p <= 1.0 for p in answer.probs)
        assert sum(answer.probs) == pytest.approx(1.0, abs=1e-6)
        assert answer.best in choices


def test_tiny_llava_loads_from_folder(llava, llava_dir):
    assert llava.name == os.path.basename(llava_dir)
    assert llava.family.name == 'llava'
    assert type(llava.model).__name__ == 'LlavaForConditionalGeneration'
    assert not llava.model.training


def test_answer_words_are_single_tokens(llava):
    for question, choices in target_questions('red ball'):
        prompt = llava.processor.apply_chat_template(
            [{'role': 'user', 'content': [{'type': 'image'}, {'type': 'text', 'text': question}]}],
            add_generation_prompt=True)
        assert prompt.endswith('ASSISTANT:')
        for choice in choices:
            ids = llava.choice_ids(prompt, choice)
            # 'ASSISTANT:' is followed by ' yes': the token with the leading space.
            assert llava.tokenizer.convert_ids_to_tokens(ids) == ['\u0120' + choice]


def test_score_single_token_matches_reference(llava, image):
    questions = target_questions('red ball')
    fast = llava.score(image, questions)
    _assert_distributions(fast, questions)
    ref = llava._reference_score(image, questions)
    _assert_close(fast, ref)
    # The random model is not flat, so the comparison means something.
    assert max(max(a.probs) for a in ref) > 0.6


def test_shared_prefix_covers_the_image(llava, image):
    prompt_ids, _, rows, _ = llava._plan(_to_pil(image), target_questions('red ball'))
    n = llava._shared_prefix_len(prompt_ids, rows)
    image_token = llava.model.config.image_token_id
    assert n > llava.model.config.image_seq_length
    assert all(image_token not in row[n:] for row in rows)


@pytest.mark.parametrize('packed', [True, False], ids=['one-packed-pass', 'prefix-then-tails'])
def test_shared_prefix_paths_match_reference(llava, generic, image, packed):
    """
    The packed single pass and the two-pass KV-cache path agree with the naive re-run.

    Multi-token choices included, and the packed pass (block mask) really ran.
    """
    questions = target_questions('green cone') + MULTI_TOKEN
    for backend in (llava, generic):
        backend.packed = packed
        try:
            _assert_close(backend.score(image, questions),
                          backend._reference_score(image, questions))
            assert backend.packed == packed       # no silent fallback to two passes
        finally:
            backend.packed = True


def test_packed_blocks_see_the_prefix_and_themselves_at_their_own_positions():
    """
    A packed block sees the prefix and itself, at the positions of its own prompt.

    Two tokens of prefix, blocks of 2 and 1 tokens, one padding token: each block is
    causal over the prefix and itself; a padding query sees the first key alone; additive
    for eager attention.
    """
    import torch
    segments, positions = block_layout(2, [2, 1])
    assert segments == [0, 0, 1, 1, 2] and positions == [0, 1, 2, 3, 2]
    allowed = block_mask(torch.tensor([segments + [-1]]))
    assert allowed.shape == (1, 1, 6, 6) and allowed.dtype == torch.bool
    assert allowed[0, 0].int().tolist() == [[1, 0, 0, 0, 0, 0],
                                            [1, 1, 0, 0, 0, 0],
                                            [1, 1, 1, 0, 0, 0],
                                            [1, 1, 1, 1, 0, 0],
                                            [1, 1, 0, 0, 1, 0],
                                            [1, 0, 0, 0, 0, 0]]
    additive = block_mask(torch.tensor([segments]), additive=True, dtype=torch.bfloat16)
    assert additive.dtype == torch.bfloat16
    assert torch.equal(additive == 0, block_mask(torch.tensor([segments])))
    assert additive.min() == torch.finfo(torch.bfloat16).min


def test_full_batch_path_matches_reference(llava, image):
    questions = target_questions('blue box') + MULTI_TOKEN
    llava.share_prefix = False
    try:
        full = llava.score(image, questions)
    finally:
        llava.share_prefix = True
    _assert_close(full, llava._reference_score(image, questions))


def test_multi_token_choices_match_reference(llava, image):
    lengths = [len(llava.choice_ids('USER: x ASSISTANT:', c)) for c in MULTI_TOKEN[0][1]]
    assert max(lengths) > 1 and min(lengths) == 1
    fast = llava.score(image, MULTI_TOKEN)
    _assert_distributions(fast, MULTI_TOKEN)
    _assert_close(fast, llava._reference_score(image, MULTI_TOKEN))


def test_score_single_question_and_empty(llava, image):
    questions = target_questions('door')[:1]
    _assert_close(llava.score(image, questions), llava._reference_score(image, questions))
    assert llava.score(image, []) == []


def test_generate_within_budget(llava, image):
    ids = llava.generate_ids(image, DESCRIBE_PROMPT, 6)
    assert 1 <= len(ids) <= 6
    text = llava.generate(image, DESCRIBE_PROMPT, 6)
    assert isinstance(text, str) and text == text.strip()
    assert llava.generate(image, DESCRIBE_PROMPT, 0) == ''


def test_generating_for_several_images_at_once_gives_each_its_own_answer(llava, image):
    images = [image, np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(image[::-1])]
    alone = [llava.generate_ids(im, DESCRIBE_PROMPT, 6) for im in images]
    assert llava.generate_ids_batch(images, DESCRIBE_PROMPT, 6) == alone
    assert llava.generate_batch(images, DESCRIBE_PROMPT, 6) == [
        llava.generate(im, DESCRIBE_PROMPT, 6) for im in images]
    assert llava.generate_batch([], DESCRIBE_PROMPT, 6) == []     # as VLMBackend's loop


def test_scoring_between_decoding_steps_changes_neither_answer(llava, image):
    """
    Scoring between a description's decoding steps changes neither answer.

    The vlm_node answers waiting closed-set requests between a description's decoding
    steps, on the same model: the description and the scores must be what each gives
    alone.
    """
    questions = target_questions('red ball')
    other = np.ascontiguousarray(image[::-1])
    alone_ids = llava.generate_ids(image, DESCRIBE_PROMPT, 8, min_new_tokens=8)
    alone_scores = llava.score(other, questions)
    mid = []
    ids = llava.generate_ids(image, DESCRIBE_PROMPT, 8, min_new_tokens=8,
                             between_steps=lambda: mid.append(llava.score(other, questions)))
    assert ids == alone_ids
    assert len(mid) == 8            # once after every decoding step
    for answers in mid:
        _assert_close(answers, alone_scores)


def test_rejects_bad_images(llava):
    with pytest.raises(ValueError):
        llava.score(np.zeros((8, 8), np.uint8), target_questions('door'))
    with pytest.raises(ValueError):
        llava.score(np.zeros((8, 8, 3), np.float32), target_questions('door'))


def test_bad_path(tmp_path):
    with pytest.raises(ModelLoadError, match='does not exist'):
        HFBackend(str(tmp_path / 'missing')).load()
    with pytest.raises(ModelLoadError, match='no config.json'):
        HFBackend(str(tmp_path)).load()


def test_not_a_vlm(tmp_path):
    from transformers import GPT2Config
    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="'gpt2' model.*not an image-text-to-text"):
        HFBackend(str(tmp_path)).load()


def test_bad_dtype_and_device(llava_dir):
    with pytest.raises(ModelLoadError, match="unknown dtype 'int4'"):
        HFBackend(llava_dir, dtype='int4').load()
    with pytest.raises(ModelLoadError, match="unknown device 'tpu'"):
        HFBackend(llava_dir, device='tpu').load()


def test_uncached_hub_id_fails_fast():
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        HFBackend('vlm-nav-test/not-a-real-model').load()
    assert time.monotonic() - start < 5.0
    message = str(err.value)
    assert 'not in the local Hugging Face cache' in message
    assert 'hf download vlm-nav-test/not-a-real-model' in message


def test_offline_env_blocks_downloads(monkeypatch):
    # Even with allow_download, HF_HUB_OFFLINE keeps it to the cache: no network wait.
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match='HF_HUB_OFFLINE is set'):
        HFBackend('vlm-nav-test/not-a-real-model', allow_download=True).load()
    assert time.monotonic() - start < 5.0


def test_generic_image_text_to_text_path(generic, image):
    assert generic.family.name == 'idefics3'
    assert registry.family_for(generic.model.config).model_class == 'AutoModelForImageTextToText'
    assert type(generic.model).__name__ == 'Idefics3ForConditionalGeneration'
    questions = target_questions('red ball') + MULTI_TOKEN[:1]
    fast = generic.score(image, questions)
    _assert_distributions(fast, questions)
    ref = generic._reference_score(image, questions)
    _assert_close(fast, ref)
    # Any other VLM runs every row in full with the image and no position ids.
    family = generic.family
    generic.family = registry.GENERIC
    try:
        _assert_close(generic.score(image, questions), ref)
    finally:
        generic.family = family
    assert len(generic.generate_ids(image, DESCRIBE_PROMPT, 4)) <= 4


def test_estimate_memory_bytes(llava):
    config = llava.model.config
    n = sum(p.numel() for p in llava.model.parameters())
    assert registry.parameter_count(config) == n
    f32 = registry.estimate_memory_bytes(config, 'float32')
    assert 4 * n <= f32 < 4 * n * 1.01  # plus small buffers (RoPE frequencies)
    assert registry.estimate_memory_bytes(config, 'bfloat16') * 2 == f32


def test_load_backend(llava_dir):
    backend = load_backend(llava_dir, max_new_tokens=3)
    assert backend.model is not None and backend.max_new_tokens == 3
    with pytest.raises(ModelLoadError, match='unknown backend'):
        load_backend(llava_dir, backend='onnx')
