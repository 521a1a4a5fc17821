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
The shipped embedded model: plain from_pretrained, and it sees what the simulator shows.

Frames are rendered fresh from layout seeds no training run uses; the thresholds are the
held-out accuracies documented beside the weights (eval.json, the README's table) minus a
margin for this small sample, never below chance + a floor: random weights (~0.5
visibility, ~0.33 bearing) fail.
"""

import json

import numpy as np
import pytest

from vlm_nav.models import embedded
from vlm_nav.models.prompting import chat_prompt
from vlm_nav.perception import multiview, vocabulary

pybullet = pytest.importorskip('pybullet')

# Documented held-out rate minus this margin (a sample of a few dozen questions) ...
MARGIN = 0.12
# ... but at least this much (chance: 0.5 visibility, 0.33 bearing).
FLOOR = {'visible': 0.65, 'bearing': 0.5, 'describe_recall': 0.5, 'describe_precision': 0.5}
FIRST_SEED = 2_005_000          # held out: training uses 0.., evaluate.py 2_000_000..
N_LAYOUTS = 12
VIEWS_PER_LAYOUT = 3


@pytest.fixture(scope='module')
def model_and_processor():
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    # One thread: 2 shared cores run small matmuls slower with more.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    path = str(embedded.EMBEDDED_MODEL_DIR)
    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    processor = AutoProcessor.from_pretrained(path)
    yield model, processor
    torch.set_num_threads(threads)


@pytest.fixture(scope='module')
def frames():
    """(layout seed, image, object truths) of fresh held-out frames."""
    from vlm_nav.sim import sample_view

    return [(layout_seed, *sample_view(layout_seed, view_seed)[:2])
            for layout_seed in range(FIRST_SEED, FIRST_SEED + N_LAYOUTS)
            for view_seed in range(VIEWS_PER_LAYOUT)]


@pytest.fixture(scope='module')
def questions(frames):
    """(image, question, choices, answer, kind) from the held-out frames."""
    from vlm_nav.sim import OBJECT_LABELS
    from vlm_nav.sim.dataset import get_world

    rng = np.random.default_rng(7)
    out = []
    for layout_seed, image, truths in frames:
        present = get_world(layout_seed).layout.labels
        seen = [t for t in truths if t.visible]
        hidden = [t.label for t in truths if not t.visible]
        absent = [lab for lab in OBJECT_LABELS if lab not in present]
        if seen:
            t = seen[rng.integers(len(seen))]
            out.append((image, vocabulary.visible_question(t.label), vocabulary.YES_NO,
                        'yes', 'visible'))
            out.append((image, vocabulary.bearing_question(t.label), vocabulary.BEARINGS,
                        t.image_bearing, 'bearing'))
        # Hard negative where there is one: in the room, not in view.
        pool = hidden if hidden and rng.random() < 0.5 else absent
        out.append((image, vocabulary.visible_question(pool[rng.integers(len(pool))]),
                    vocabulary.YES_NO, 'no', 'visible'))
    return out


def _threshold(kind: str) -> float:
    documented = json.loads((embedded.EMBEDDED_MODEL_DIR / 'eval.json').read_text())[kind]
    if documented < FLOOR[kind] + 0.05:
        pytest.skip(f'the shipped model has not learned {kind} (held-out {documented:.2f}); '
                    'train it with scripts/train_embedded_gpu.sh')
    return max(documented - MARGIN, FLOOR[kind])


def _accuracy(model, processor, questions, kind: str) -> float:
    import torch

    rows = [q for q in questions if q[4] == kind]
    prompts = [chat_prompt(processor, q[1]) for q in rows]
    with torch.no_grad():
        inputs = processor(images=[q[0] for q in rows], text=prompts, padding=True,
                           return_tensors='pt')
        logits = model(**inputs).logits
    last = inputs['attention_mask'].sum(1) - 1
    hits = []
    for r, (_, _, choices, answer, _) in enumerate(rows):
        ids = [processor.tokenizer.encode(c, add_special_tokens=False)[0] for c in choices]
        hits.append(choices[int(logits[r, last[r], ids].argmax())] == answer)
    return float(np.mean(hits))


def test_loads_like_a_hub_model(model_and_processor):
    model, processor = model_and_processor
    assert type(model).__name__ == 'LlavaForConditionalGeneration'
    assert type(processor).__name__ == 'LlavaProcessor'
    assert sum(p.numel() for p in model.parameters()) < 5_000_000
    assert processor.chat_template
    assert model.generation_config.eos_token_id == processor.tokenizer.eos_token_id
    embedded.check_single_tokens(processor.tokenizer)
    # Byte-level: a free target the training never saw still spells out, no <unk>.
    ids = processor.tokenizer.encode('Is there a purple giraffe?', add_special_tokens=False)
    assert processor.tokenizer.decode(ids) == 'is there a purple giraffe?'


def test_answers_visibility(model_and_processor, questions):
    acc = _accuracy(*model_and_processor, questions, 'visible')
    assert acc >= _threshold('visible'), f'visibility accuracy {acc:.2f}'


def test_answers_bearing(model_and_processor, questions):
    acc = _accuracy(*model_and_processor, questions, 'bearing')
    assert acc >= _threshold('bearing'), f'bearing accuracy {acc:.2f}'


def test_describes_in_the_grammar(model_and_processor, questions):
    import torch

    model, processor = model_and_processor
    image = questions[0][0]
    inputs = processor(images=image, text=chat_prompt(processor, vocabulary.DESCRIBE_PROMPT),
                       return_tensors='pt')
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=40)
    text = processor.decode(out[0, inputs['input_ids'].shape[1]:], skip_special_tokens=True)
    assert text.strip() == vocabulary.NOTHING + '.' or vocabulary.parse_description(text)


def test_describer_names_what_is_in_view(model_and_processor, frames):
    """
    vlm_node's describer (default views and votes) over the public generate path.

    Object recall and precision at the documented held-out rates, less the margin.
    """
    import torch

    model, processor = model_and_processor
    prompt = chat_prompt(processor, vocabulary.DESCRIBE_PROMPT)

    def generate(images):
        inputs = processor(images=images, text=[prompt] * len(images), return_tensors='pt')
        with torch.no_grad():
            out = model.generate(**inputs, max_new_tokens=48)
        return [t.strip() for t in processor.batch_decode(
            out[:, inputs['input_ids'].shape[1]:], skip_special_tokens=True)]

    hits = named = truth = 0
    for _, image, truths in frames:
        text, objects = multiview.describe(generate, image)
        assert vocabulary.parse_grammar(text) is not None, text
        seen = {t.label for t in truths if t.visible}
        said = {o.label for o in objects}
        hits, named, truth = hits + len(seen & said), named + len(said), truth + len(seen)
    recall, precision = hits / truth, hits / max(1, named)
    print(f'describer on {len(frames)} frames: recall {recall:.3f} precision {precision:.3f}')
    assert recall >= _threshold('describe_recall'), f'recall {recall:.2f}'
    assert precision >= _threshold('describe_precision'), f'precision {precision:.2f}'


def test_batched_descriptions_end_where_each_would_alone(frames):
    """
    The describer decodes its views together, each row as it would alone.

    Rows that reach end-of-text early must not carry the padding of the longer ones.
    """
    from vlm_nav.models import load_backend

    backend = load_backend(str(embedded.EMBEDDED_MODEL_DIR))
    images = [image for _, image, _ in frames[:6]]
    alone = [backend.generate_ids(image, vocabulary.DESCRIBE_PROMPT, 48) for image in images]
    assert len({len(ids) for ids in alone}) > 1, 'want descriptions of different lengths'
    assert backend.generate_ids_batch(images, vocabulary.DESCRIBE_PROMPT, 48) == alone
