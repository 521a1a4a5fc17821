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
One-pass decisions of the families robots run, against the naive per-question reference.

Small models of the real classes (random weights, vlm_nav.testing.tiny). A decision (the
navigator's four target questions plus multi-token choices) must give the probabilities
the naive reference gives (every question and choice run alone) to 1e-4, in as many
forward passes of the language model as the family's path promises: one packed pass for
the families that pack (M-RoPE positions from the model's own get_rope_index for
Qwen2.5-VL and Qwen3-VL), a prefill and one batch of tails where a family's layers cannot
be masked per question. Also: the positions and masks matter (the wrong ones give other
answers), the image budget changes the image tokens, and a printed comparison of a
decision's time with one bare prefill (not asserted: timings on a shared CPU vary).
"""

import time

from conftest import language_model
import numpy as np
import pytest

from vlm_nav.models import load_backend, registry
from vlm_nav.models.base import ModelLoadError
from vlm_nav.perception.vocabulary import target_questions
from vlm_nav.testing import tiny

# The families added for robots, each with a tiny builder.
NEW = [name for name in ('qwen2_5_vl', 'qwen3_vl', 'smolvlm', 'gemma3', 'fast_vlm', 'lfm2_vl')
       if name in tiny.BUILDERS]
MULTI_TOKEN = ('What is it?', ('red ball', 'red box', 'door', 'purple thing'))

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def image():
    return np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def _questions(target='red ball'):
    return target_questions(target) + [MULTI_TOKEN]


def _count_passes(backend):
    """Count the language model's forward calls (a hook; the calls themselves are real)."""
    calls = []
    handle = language_model(backend.model).register_forward_pre_hook(
        lambda module, args: calls.append(1))
    return calls, handle


@pytest.mark.parametrize('name', NEW)
def test_decision_matches_the_naive_reference_in_one_pass(backends, name, image):
    backend = backends(name)
    family = backend.family
    assert family.name == name
    questions = _questions()
    calls, handle = _count_passes(backend)
    try:
        fast = backend.score(image, questions)
    finally:
        handle.remove()
    # One packed pass, or one prefill + one batch of tails where layers can't be masked.
    assert len(calls) == (1 if family.packs else 2), (name, len(calls))
    reference = backend._reference_score(image, questions)
    for answer, ref, (_, choices) in zip(fast, reference, questions):
        assert answer.choices == list(choices)
        assert sum(answer.probs) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(answer.probs, ref.probs, atol=1e-4)
    assert max(max(a.probs) for a in reference) > 0.6       # not flat: the check means something


@pytest.mark.parametrize('name', [n for n in NEW if registry.BY_NAME[n].mrope])
def test_mrope_positions_are_the_models_own(backends, name, image):
    """Plain 1-D positions for the packed tails give other answers than the reference."""
    import torch
    backend = backends(name)
    questions = _questions('door')
    reference = backend._reference_score(image, questions)
    own = backend._mrope_rows
    backend._mrope_rows = lambda rows, grids: [torch.arange(len(r)).expand(3, -1) for r in rows]
    try:
        flat = backend.score(image, questions)
    finally:
        backend._mrope_rows = own
    worst = max(np.abs(np.subtract(a.probs, r.probs)).max() for a, r in zip(flat, reference))
    assert worst > 1e-3, worst


@pytest.mark.parametrize('piece', ['open_image_blocks', 'sliding_window'])
@pytest.mark.parametrize('name', [n for n in NEW if registry.BY_NAME[n].bidirectional_image])
def test_packed_mask_needs_the_image_block_and_the_window(backends, name, image, piece,
                                                          monkeypatch):
    """Without its open image block, or its window by position, the packed pass is wrong."""
    from vlm_nav.models import hf_backend
    backend = backends(name)
    text = backend.model.config.get_text_config()
    # The tiny model's window is shorter than its prompt: the window changes answers.
    assert text.sliding_window < len(backend._encode(backend_pil(image),
                                                     backend._prompt('Is there a door?'))['ids'])
    questions = _questions('door')
    reference = backend._reference_score(image, questions)
    if piece == 'open_image_blocks':
        monkeypatch.setattr(hf_backend, piece, lambda allowed, is_image: allowed)
    else:
        monkeypatch.setattr(hf_backend, piece, lambda allowed, positions, window: allowed)
    wrong = backend.score(image, questions)
    worst = max(np.abs(np.subtract(a.probs, r.probs)).max() for a, r in zip(wrong, reference))
    assert worst > 1e-3, worst


@pytest.mark.parametrize('name', NEW)
def test_several_cameras_in_one_batch_equal_each_alone(backends, name):
    backend = backends(name)
    rng = np.random.default_rng(8)
    images = [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    questions = [_questions('red ball'), _questions('blue box')]
    alone = [backend.score(im, qs) for im, qs in zip(images, questions)]
    batch = backend.score_batch(list(zip(images, questions)))
    for got, expected in zip(batch, alone):
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)


def _image_tokens(backend, image):
    enc = backend._encode(backend_pil(image), backend._prompt('Is there a door?'))
    return enc['ids'].count(backend.model.config.image_token_id)


def backend_pil(image):
    from vlm_nav.models.hf_backend import _to_pil
    return _to_pil(image)


@pytest.mark.parametrize('name', [n for n in NEW if registry.BY_NAME[n].image_budget])
def test_image_budget_sets_the_image_tokens(family_model_dir, backends, name, image):
    full = _image_tokens(backends(name), image)
    small = load_backend(family_model_dir(name), max_image_pixels=32 * 24)
    fewer = _image_tokens(small, image)
    assert 0 < fewer < full, (fewer, full)
    answers = small.score(image, _questions())
    for answer, ref in zip(answers, small._reference_score(image, _questions())):
        np.testing.assert_allclose(answer.probs, ref.probs, atol=1e-4)


@pytest.mark.parametrize('name', [n for n in sorted(tiny.BUILDERS)
                                  if not registry.BY_NAME[n].image_budget][:1])
def test_image_budget_is_refused_for_a_fixed_resolution(family_model_dir, name):
    with pytest.raises(ModelLoadError, match='fixed input resolution'):
        load_backend(family_model_dir(name), max_image_pixels=4096)


def test_convolution_layers_get_prefill_and_right_padded_tails():
    """
    LFM2-VL (short convolutions + attention): one prefill, then every tail right after it.

    The real Lfm2VlForConditionalGeneration class (tiny, random weights) with NaFlex
    patches given directly (its processor needs torchvision, tiny.UNBUILT); each row's
    logits must equal the row run alone, and left-padded tails must not (the convolution
    reads the pads).
    """
    import torch
    from vlm_nav.models.hf_backend import HFBackend
    tokenizer = tiny.build_tokenizer()
    model = tiny.tiny_lfm2_vl_model(tokenizer)
    backend = HFBackend('lfm2-vl')
    backend.model, backend.tokenizer = model, tokenizer
    backend.family = registry.BY_NAME['lfm2_vl']
    assert backend._right_pad_tails() and not backend.family.packs
    rows_of, cols_of = 8, 6          # patches; the model merges 2x2 into one image token
    patches = torch.randn(1, 64, 3 * 4 * 4, generator=torch.Generator().manual_seed(0))
    image = {'pixel_values': patches,
             'pixel_attention_mask': torch.arange(64)[None] < rows_of * cols_of,
             'spatial_shapes': torch.tensor([[rows_of, cols_of]])}
    image_token = model.config.image_token_id
    prefix = [1, 20, 30] + [image_token] * (rows_of * cols_of // 4) + [40, 41]
    rows = [prefix + [50, 51, 52], prefix + [60], prefix + [70, 71, 72, 73, 74],
            prefix + [80, 81]]
    keep = 2
    with torch.inference_mode():
        shared = backend._forward_shared(rows, len(prefix), [image], [0] * len(rows), keep)
        alone = [model(input_ids=torch.tensor([row]), **image).logits[0, -keep:] for row in rows]
        for row, got, expected in zip(rows, shared, alone):
            n = min(keep, len(row) - len(prefix))       # positions a choice can use
            torch.testing.assert_close(got[keep - n:], expected[keep - n:], atol=1e-4, rtol=0)
        backend._right_pad_tails = lambda: False
        left = backend._forward_shared(rows, len(prefix), [image], [0] * len(rows), keep)
    assert (left[1, -1] - alone[1][-1]).abs().max() > 1e-3


def test_decision_time_against_one_bare_prefill(backends, image):
    """
    Print each family's decision time over one bare prefill of its prompt (not asserted).

    Both from the camera image: the processor, then the forward pass(es).
    """
    import torch
    rows = []
    for name in NEW:
        backend = backends(name)
        questions = target_questions('red ball')
        prompt = backend._prompt(questions[0][0])
        enc = backend._encode(backend_pil(image), prompt)

        def prefill():
            # One question alone: the processor, then one forward of its prompt.
            enc = backend._encode(backend_pil(image), prompt)
            ids = torch.tensor([enc['ids']])
            with torch.inference_mode():
                backend.model(input_ids=ids, logits_to_keep=1,
                              **backend._image_inputs(enc['image'], 1),
                              **backend._token_types(ids))

        def decision():
            backend.score(image, questions)

        def best(fn, n=5):
            fn()
            times = []
            for _ in range(n):
                start = time.perf_counter()
                fn()
                times.append(time.perf_counter() - start)
            return min(times)
        bare, one = best(prefill), best(decision)
        rows.append(f'{name:12s} prefill {bare * 1e3:6.1f} ms  decision {one * 1e3:6.1f} ms  '
                    f'ratio {one / bare:4.2f}  ({len(enc["ids"])} prompt tokens)')
    print('\n' + '\n'.join(rows))
