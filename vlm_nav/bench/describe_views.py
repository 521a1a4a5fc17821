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
Which views of a frame should the describer combine? A sweep on validation layouts.

    python -m vlm_nav.bench.describe_views --out bench/results/describe_views

Each candidate view (multiview.VIEWS and a few more transforms defined here) is described
once per frame, greedily through the public processor + generate path
(training.evaluate.generate_descriptions); then every set of views that starts with
'identity' (up to --max-views) and every vote count is scored with multiview.merge, as
vlm_node combines them. Validation layouts by default (1 000 000.., never the held-out
2 000 000.. that the model card reports), so the chosen set is tested once, on held-out,
by `python -m vlm_nav.training.evaluate`.

Writes combos.csv (every set and vote), views.csv (each view alone), README-ready lines on
stdout and recall_precision.png.
"""

import argparse
import csv
from itertools import combinations
from pathlib import Path
import sys
import time
from typing import Callable, Dict

import numpy as np

from vlm_nav.models import embedded
from vlm_nav.perception import multiview, vocabulary
from vlm_nav.training import data
from vlm_nav.training.evaluate import _describe_scores, generate_descriptions


def _brightness(factor: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda images: np.clip(images.astype(np.float32) * factor, 0, 255).astype(np.uint8)


def _shift_up(images: np.ndarray) -> np.ndarray:
    # Content moves 2 px (of 96) up, the bottom row repeated: a vertical twin of 'shift'.
    dy = max(1, round(images.shape[1] * multiview.SHIFT_FRACTION))
    return np.concatenate([images[:, dy:], np.repeat(images[:, -1:], dy, axis=1)], axis=1)


def _shift_right(images: np.ndarray) -> np.ndarray:
    # 'shift' the other way: content moves 2 px right, the left column repeated.
    flipped = multiview.view_image(images, 'mirror')
    return multiview.view_image(multiview.view_image(flipped, 'shift'), 'mirror')


def candidate_views() -> Dict[str, Callable[[np.ndarray], np.ndarray]]:
    """
    Return name -> batch transform of every candidate view.

    A name containing 'mirror' is a mirrored view (its bearings are swapped back by
    multiview.to_frame).
    """
    views = {name: (lambda images, name=name: multiview.view_image(images, name))
             for name in multiview.VIEWS}
    mirror = views['mirror']
    views.update({
        'shift_up': _shift_up,
        'mirror_shift_up': lambda images: _shift_up(mirror(images)),
        'shift_right': _shift_right,
        'mirror_shift_right': lambda images: _shift_right(mirror(images)),
        'darker': _brightness(0.85),
        'mirror_darker': lambda images: _brightness(0.85)(mirror(images)),
        'brighter': _brightness(1.15),
    })
    return views


def main(argv=None) -> None:
    import torch
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--model', type=Path, default=embedded.EMBEDDED_MODEL_DIR)
    parser.add_argument('--first-seed', type=int, default=data.VAL_SEED_BASE)
    parser.add_argument('--layouts', type=int, default=300)
    parser.add_argument('--views-per-layout', type=int, default=4)
    parser.add_argument('--max-views', type=int, default=5)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    model = LlavaForConditionalGeneration.from_pretrained(str(args.model)).eval()
    processor = AutoProcessor.from_pretrained(str(args.model))
    frames = data.load_views(args.first_seed, args.layouts, args.views_per_layout)
    rows = range(len(frames))
    device = torch.device('cpu')

    objects, singles = {}, []
    for name, transform in candidate_views().items():
        start = time.time()
        texts = generate_descriptions(model, processor, transform(frames.images), device)
        objects[name] = [multiview.to_frame(vocabulary.parse_grammar(t) or [], name)
                         for t in texts]
        scores = _describe_scores(
            [vocabulary.format_description(o) for o in objects[name]], frames, rows)
        singles.append({'view': name, **{k: round(v, 4) for k, v in scores.items()}})
        print(f"{name:20s} recall {scores['describe_recall']:.3f} precision "
              f"{scores['describe_precision']:.3f} item recall "
              f"{scores['describe_item_recall']:.3f} ({time.time() - start:.0f} s)",
              flush=True)

    names = [n for n in objects if n != 'identity']
    combos = []
    for size in range(1, args.max_views):
        for rest in combinations(names, size):
            views = ('identity',) + rest
            for votes in range(1, len(views) + 1):
                described = [vocabulary.format_description(multiview.merge(
                    [objects[v][i] for v in views], views, votes)) for i in rows]
                scores = _describe_scores(described, frames, rows)
                combos.append({'views': '+'.join(views), 'n_views': len(views),
                               'min_votes': votes,
                               **{k: round(v, 4) for k, v in scores.items()}})
        print(f'scored the sets of {size + 1} views', flush=True)
    combos.sort(key=lambda r: -min(r['describe_recall'], r['describe_precision']))

    for path, table in (('views.csv', singles), ('combos.csv', combos)):
        with open(args.out / path, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
    shipped = '+'.join(multiview.VIEWS)
    print(f'\n{len(frames)} frames of layouts {args.first_seed}..'
          f'{args.first_seed + args.layouts - 1}; best sets by min(recall, precision):')
    print('| views | votes | recall | precision | item recall | 14-29 px recall |')
    print('| --- | --- | --- | --- | --- | --- |')
    for r in combos[:12] + [r for r in combos if r['views'] == shipped
                            and r['min_votes'] == multiview.DEFAULT_MIN_VOTES]:
        print(f"| {r['views']} | {r['min_votes']} | {r['describe_recall']:.3f} | "
              f"{r['describe_precision']:.3f} | {r['describe_item_recall']:.3f} | "
              f"{r.get('describe_recall_14_29px', 0):.3f} |")
    plot(combos, singles, shipped, args.out / 'recall_precision.png')


def plot(combos, singles, shipped: str, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 6))
    for n_views, colour in zip(range(2, 7), ('C0', 'C1', 'C2', 'C3', 'C4')):
        pts = [(r['describe_recall'], r['describe_precision']) for r in combos
               if r['n_views'] == n_views]
        if pts:
            ax.scatter(*zip(*pts), s=6, alpha=0.4, color=colour, label=f'{n_views} views')
    ax.scatter([r['describe_recall'] for r in singles],
               [r['describe_precision'] for r in singles], marker='x', color='k',
               label='one view alone')
    chosen = [r for r in combos if r['views'] == shipped
              and r['min_votes'] == multiview.DEFAULT_MIN_VOTES]
    if chosen:
        ax.scatter([chosen[0]['describe_recall']], [chosen[0]['describe_precision']],
                   marker='*', s=220, color='red', label='shipped: 4 views, 2 votes')
    ax.axvline(0.95, color='grey', lw=0.8, ls='--')
    ax.axhline(0.95, color='grey', lw=0.8, ls='--')
    ax.set_xlim(0.85, 1.0)
    ax.set_ylim(0.85, 1.0)
    ax.set_xlabel('description object recall')
    ax.set_ylabel('description object precision')
    ax.set_title('Describer views and votes (validation layouts)')
    ax.legend(loc='lower left', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == '__main__':
    main(sys.argv[1:])
