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
Evaluate a save_pretrained VLM folder on held-out simulator layouts.

    python -m vlm_nav.training.evaluate [--model DIR] [--layouts N] [--out DIR]

Closed-set questions are scored as the log-likelihood of each choice after the same chat
prompt (the public processor path, as the package's nodes use it); descriptions are
generated greedily and parsed with vocabulary.parse_description. Prints a markdown table
and writes eval.md / eval.json.
"""

import argparse
from collections import defaultdict
import json
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from vlm_nav.models import embedded
from vlm_nav.models.prompting import chat_prompt
from vlm_nav.perception import multiview, vocabulary
from vlm_nav.training import data
from vlm_nav.training.forward import hidden_states, pixel_values

CLOSED = ('visible', 'bearing', 'distance', 'path')
EVAL_START, EVAL_END = '<!-- eval -->', '<!-- /eval -->'
# Description recall by the object's visible pixel count: a visible object may be as small
# as 14 pixels (sim.world.min_visible_pixels at 96x96), a blob inside one 8x8 patch.
SIZE_BINS = ((14, 30, 'describe_recall_14_29px'), (30, 60, 'describe_recall_30_59px'),
             (60, None, 'describe_recall_60px_up'))
SINGLE_KEYS = ('describe_recall', 'describe_precision', 'describe_recall_14_29px',
               'describe_exact')


def _describe_scores(pred: Sequence[str], views: data.Views, rows: Sequence[int]
                     ) -> Dict[str, float]:
    """Object-level (label) and item-level (label, bearing, distance) recall/precision."""
    counts = defaultdict(int)
    labels = data.sim_labels()
    for text, i in zip(pred, rows):
        truth = views.truth(i)
        got = vocabulary.parse_description(text)
        t_lab, g_lab = {o.label for o in truth}, {o.label for o in got}
        t_item, g_item = set(truth), set(got)
        size = defaultdict(int)     # largest visible object of each label in this view
        for lab, vis, px in zip(views.labels[i], views.visible[i], views.pixels[i]):
            if lab >= 0 and vis:
                size[labels[lab]] = max(size[labels[lab]], int(px))
        for label, px in size.items():
            for lo, hi, key in SIZE_BINS:
                if px >= lo and (hi is None or px < hi):
                    counts[key + '_true'] += 1
                    counts[key + '_hit'] += int(label in g_lab)
        counts['lab_hit'] += len(t_lab & g_lab)
        counts['lab_true'] += len(t_lab)
        counts['lab_pred'] += len(g_lab)
        counts['item_hit'] += len(t_item & g_item)
        counts['item_true'] += len(t_item)
        counts['item_pred'] += len(g_item)
        counts['exact'] += int(text.strip() == vocabulary.format_description(truth))
        counts['nothing_ok'] += int(not truth and text.strip() == vocabulary.NOTHING + '.')
        counts['n'] += 1
    by_size = {key: counts[key + '_hit'] / counts[key + '_true']
               for _, _, key in SIZE_BINS if counts[key + '_true']}
    return {
        **by_size,
        'describe_recall': counts['lab_hit'] / max(1, counts['lab_true']),
        'describe_precision': counts['lab_hit'] / max(1, counts['lab_pred']),
        'describe_item_recall': counts['item_hit'] / max(1, counts['item_true']),
        'describe_item_precision': counts['item_hit'] / max(1, counts['item_pred']),
        'describe_exact': counts['exact'] / max(1, counts['n']),
    }


def _closed_scores(samples: Sequence[data.Sample], best: Sequence[str]) -> Dict[str, float]:
    hits: Dict[str, List[bool]] = defaultdict(list)
    for s, b in zip(samples, best):
        ok = b == s.answer
        hits[s.qtype].append(ok)
        if s.qtype == 'visible':
            hits['visible_pos' if s.answer == vocabulary.YES_NO[0] else 'visible_neg'].append(ok)
    return {k: float(np.mean(v)) for k, v in hits.items()}


@torch.no_grad()
def fast_metrics(model, encoder, views: data.Views, samples: Sequence[data.Sample],
                 device: torch.device, bf16: bool = False, batch: int = 64) -> Dict[str, float]:
    """Validate during training: the training forward, argmax over the choices' tokens."""
    closed = [s for s in samples if s.qtype in CLOSED]
    best = []
    for start in range(0, len(closed), batch):
        part = closed[start:start + batch]
        ids, mask, _, last = encoder.batch(part, with_answers=False)
        images = torch.from_numpy(views.images[[s.view for s in part]]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            hidden = hidden_states(model, pixel_values(images, encoder.processor),
                                   torch.arange(len(part), device=device), ids.to(device),
                                   mask.to(device))
            logits = model.lm_head(hidden[torch.arange(len(part)), last.to(device)]).float()
        for r, s in enumerate(part):
            choice = encoder.choice_ids(s.choices)
            best.append(s.choices[int(logits[r, choice].argmax())])
    metrics = _closed_scores(closed, best)
    desc = [s for s in samples if s.qtype == 'describe']
    if desc:
        texts = generate_descriptions(model, encoder.processor,
                                      views.images[[s.view for s in desc]], device, bf16)
        metrics.update(_describe_scores(texts, views, [s.view for s in desc]))
    return metrics


@torch.no_grad()
def generate_descriptions(model, processor, images: np.ndarray, device: torch.device,
                          bf16: bool = False, batch: int = 64, max_new_tokens: int = 48
                          ) -> List[str]:
    """Greedy descriptions through the public processor + generate path."""
    prompt = chat_prompt(processor, vocabulary.DESCRIBE_PROMPT)
    texts: List[str] = []
    for start in range(0, len(images), batch):
        imgs = list(images[start:start + batch])
        inputs = processor(images=imgs, text=[prompt] * len(imgs), return_tensors='pt')
        inputs = {k: v.to(device) for k, v in inputs.items()}
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
        new = out[:, inputs['input_ids'].shape[1]:]
        texts += [t.strip() for t in processor.batch_decode(new, skip_special_tokens=True)]
    return texts


@torch.no_grad()
def score_choices(model, processor, images: Sequence[np.ndarray], questions: Sequence[str],
                  choices: Sequence[Sequence[str]], device: torch.device
                  ) -> List[np.ndarray]:
    """
    Softmax over each question's choices of their log-likelihood after the chat prompt.

    One forward per batch when every choice is one token (the embedded tokenizer);
    otherwise each choice's tokens are scored by their own forward passes.
    """
    tok = processor.tokenizer
    prompts = [chat_prompt(processor, q) for q in questions]
    inputs = processor(images=list(images), text=prompts, padding=True, return_tensors='pt')
    inputs = {k: v.to(device) for k, v in inputs.items()}
    logits = model(**inputs).logits.float()
    last = inputs['attention_mask'].sum(1) - 1
    logp = torch.log_softmax(logits[torch.arange(len(prompts)), last], -1)
    out = []
    for r, opts in enumerate(choices):
        ids = [tok.encode(c, add_special_tokens=False) for c in opts]
        if all(len(i) == 1 for i in ids):
            ll = torch.stack([logp[r, i[0]] for i in ids])
        else:
            ll = torch.stack([_sequence_ll(model, processor, images[r], prompts[r], c, device)
                              for c in opts])
        out.append(torch.softmax(ll, 0).cpu().numpy())
    return out


def _sequence_ll(model, processor, image, prompt: str, choice: str, device) -> torch.Tensor:
    n_prompt = processor(images=[image], text=[prompt], return_tensors='pt')['input_ids'].shape[1]
    inputs = processor(images=[image], text=[prompt + choice], return_tensors='pt')
    inputs = {k: v.to(device) for k, v in inputs.items()}
    logp = torch.log_softmax(model(**inputs).logits[0].float(), -1)
    target = inputs['input_ids'][0, n_prompt:]
    return logp[torch.arange(n_prompt - 1, n_prompt - 1 + len(target)), target].sum()


def evaluate(model, processor, views: data.Views, samples: Sequence[data.Sample],
             device: torch.device, batch: int = 32,
             describe_views: Sequence[str] = multiview.VIEWS,
             describe_min_votes: int = multiview.DEFAULT_MIN_VOTES) -> Dict[str, float]:
    """
    Measure per-question-type accuracies and description recall/precision, public path.

    Descriptions as vlm_node's describer makes them (multiview.describe's views and
    votes), and from the first view alone.
    """
    closed = [s for s in samples if s.qtype in CLOSED]
    best = []
    for start in range(0, len(closed), batch):
        part = closed[start:start + batch]
        probs = score_choices(model, processor, [views.images[s.view] for s in part],
                              [s.question for s in part], [s.choices for s in part], device)
        best += [s.choices[int(np.argmax(p))] for s, p in zip(part, probs)]
    metrics = _closed_scores(closed, best)
    desc = [s for s in samples if s.qtype == 'describe']
    rows = [s.view for s in desc]
    images = views.images[rows]
    by_view = [generate_descriptions(model, processor, multiview.view_image(images, view),
                                     device)
               for view in describe_views]
    described = [multiview.combine(texts, describe_views, describe_min_votes)[0]
                 for texts in zip(*by_view)]
    metrics.update(_describe_scores(described, views, rows))
    if len(describe_views) > 1:     # the first view alone: one greedy description
        single = _describe_scores(by_view[0], views, rows)
        metrics.update({'single_' + key: single[key] for key in SINGLE_KEYS})
    metrics['n_closed'] = len(closed)
    metrics['n_describe'] = len(desc)
    metrics['describe_views'] = ','.join(describe_views)
    metrics['describe_min_votes'] = describe_min_votes
    return metrics


ROWS = [
    ('visible', 'target visible yes/no'),
    ('visible_pos', '  on visible targets'),
    ('visible_neg', '  on absent / out-of-view targets'),
    ('bearing', 'bearing left/center/right (given visible)'),
    ('distance', 'near/far (given visible)'),
    ('path', 'path ahead clear yes/no'),
    ('describe_recall', 'description object recall'),
    ('describe_recall_14_29px', '  objects of 14-29 pixels'),
    ('describe_recall_30_59px', '  objects of 30-59 pixels'),
    ('describe_recall_60px_up', '  objects of 60 pixels or more'),
    ('describe_precision', 'description object precision'),
    ('describe_item_recall', 'description item (label+bearing+distance) recall'),
    ('describe_item_precision', 'description item precision'),
    ('describe_exact', 'description exact match'),
    ('single_describe_recall', 'one greedy description (no views): object recall'),
    ('single_describe_recall_14_29px', '  objects of 14-29 pixels'),
    ('single_describe_precision', '  object precision'),
    ('single_describe_exact', '  exact match'),
]


def format_metrics(metrics: Dict[str, float]) -> str:
    """One line: 'visible 0.951 bearing 0.970 ...'."""
    keys = ['visible', 'visible_pos', 'visible_neg', 'bearing', 'distance', 'path',
            'describe_recall', 'describe_precision', 'describe_exact']
    short = {'describe_recall': 'desc_R', 'describe_precision': 'desc_P',
             'describe_exact': 'desc_EM', 'visible_pos': 'vis+', 'visible_neg': 'vis-'}
    return ' '.join(f'{short.get(k, k)} {metrics[k]:.3f}' for k in keys if k in metrics)


def markdown_table(metrics: Dict[str, float]) -> str:
    lines = ['| metric | value |', '| --- | --- |']
    lines += [f'| {name} | {metrics[key]:.3f} |' for key, name in ROWS if key in metrics]
    return '\n'.join(lines)


def latency(model, processor, image: np.ndarray, device: torch.device, repeats: int = 20,
            describe_views: Sequence[str] = multiview.VIEWS,
            describe_min_votes: int = multiview.DEFAULT_MIN_VOTES) -> Dict[str, float]:
    """
    Time batch 1 inference: median ms of three operations.

    One closed-set decision (processor + forward), one greedy description, and the
    describer's description from all its views.
    """
    def timed(fn) -> float:
        fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return 1000 * float(np.median(times))

    def describe(images: List[np.ndarray]) -> List[str]:
        # One image at a time, as vlm_node generates its views while it answers decisions
        # between decoding steps (the default).
        return [generate_descriptions(model, processor, image[None], device)[0]
                for image in images]

    q = vocabulary.visible_question('red ball')
    return {
        'decision_ms': timed(lambda: score_choices(model, processor, [image], [q],
                                                   [vocabulary.YES_NO], device)),
        'describe_ms': timed(lambda: describe([image])),
        'describe_views_ms': timed(lambda: multiview.describe(
            describe, image, describe_views, describe_min_votes)),
    }


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', type=Path, default=embedded.EMBEDDED_MODEL_DIR)
    parser.add_argument('--first-seed', type=int, default=data.TEST_SEED_BASE,
                        help='first held-out layout seed (training uses 0..)')
    parser.add_argument('--layouts', type=int, default=200)
    parser.add_argument('--views-per-layout', type=int, default=8)
    parser.add_argument('--per-type', type=int, default=1600,
                        help='questions per type (1600: one description per held-out view)')
    parser.add_argument('--describe-views', default=','.join(multiview.VIEWS),
                        help='views the describer combines (vlm_node describe_views)')
    parser.add_argument('--describe-min-votes', type=int, default=multiview.DEFAULT_MIN_VOTES)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=0)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--cache', type=Path, default=data.DEFAULT_CACHE)
    parser.add_argument('--out', type=Path, default=None, help='write eval.md / eval.json here')
    parser.add_argument('--latency', action='store_true', help='also time batch-1 inference')
    parser.add_argument('--update-readme', action='store_true',
                        help="replace the table between the eval markers of the model's README.md")
    args = parser.parse_args(argv)
    describe_views = [v.strip() for v in args.describe_views.split(',') if v.strip()]
    problem = multiview.check_views(describe_views, args.describe_min_votes)
    if problem:
        parser.error(f'--describe-views/--describe-min-votes: {problem}')
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from transformers import AutoProcessor, LlavaForConditionalGeneration
    model = LlavaForConditionalGeneration.from_pretrained(str(args.model)).to(device).eval()
    processor = AutoProcessor.from_pretrained(str(args.model))
    views = data.load_views(args.first_seed, args.layouts, args.views_per_layout,
                            workers=args.workers, cache=args.cache)
    samples = data.fixed_eval_samples(views, args.per_type, seed=12345)
    start = time.time()
    metrics = evaluate(model, processor, views, samples, device,
                       describe_views=describe_views, describe_min_votes=args.describe_min_votes)
    metrics['eval_seconds'] = round(time.time() - start, 1)
    if args.latency:
        metrics.update(latency(model, processor, views.images[0], device,
                               describe_views=describe_views,
                               describe_min_votes=args.describe_min_votes))
    header = (f'Held-out layouts {args.first_seed}..{args.first_seed + args.layouts - 1} '
              f'({len(views)} views), {args.per_type} questions per type, model {args.model}; '
              f'descriptions from views {", ".join(describe_views)}, objects named in '
              f'{args.describe_min_votes} or more')
    table = markdown_table(metrics)
    print(header)
    print(table)
    if 'decision_ms' in metrics:
        print(f"latency (batch 1, {device}): decision {metrics['decision_ms']:.1f} ms, "
              f"description {metrics['describe_ms']:.1f} ms, "
              f"from {len(describe_views)} views {metrics['describe_views_ms']:.1f} ms")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / 'eval.md').write_text(header + '\n\n' + table + '\n')
        (args.out / 'eval.json').write_text(json.dumps(metrics, indent=1) + '\n')
    if args.update_readme:
        update_readme(args.model / 'README.md', header + '\n\n' + table)


def update_readme(path: Path, text: str) -> None:
    """Put text between '<!-- eval -->' and '<!-- /eval -->' in a model card."""
    card = path.read_text()
    start, end = card.index(EVAL_START) + len(EVAL_START), card.index(EVAL_END)
    path.write_text(card[:start] + '\n' + text + '\n' + card[end:])


if __name__ == '__main__':
    main(sys.argv[1:])
