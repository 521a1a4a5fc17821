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
Perception accuracy on the frames a navigating robot sees, not on random views.

    python -m vlm_nav.bench.nav_perception --out bench/results/nav_perception \
        embedded=vlm_nav/embedded_model stage3=/tmp/stage3/vlm_nav/embedded_model

Drives the navigation benchmark's held-out episodes (`sim.episodes.make_episodes`) with the
scored navigator on ground-truth perception (the oracle policy, so every model sees the
same frames), keeps every --every-th camera frame it asked about with the ground truth
of that moment, then scores each model on those frames with the navigator's own four
questions (`vocabulary.target_questions`, through `VLMBackend.score` as vlm_node does).
The held-out evaluation of `vlm_nav.training.evaluate` samples random views; a navigating
robot spends much of its time close to walls and objects, so its path-clear answers are
harder there. Writes summary.json and accuracy.png to --out.
"""

import argparse
import json
from pathlib import Path
import sys
import time

import numpy as np

from vlm_nav.models import load_backend
from vlm_nav.perception import vocabulary
from vlm_nav.sim.episodes import make_episodes, oracle_observer, simulate_episode

REPO = Path(__file__).resolve().parents[2]

METRICS = (
    ('visible_recall', 'target visible: said yes'),
    ('visible_specificity', 'target not visible: said no'),
    ('bearing', 'bearing (given visible)'),
    ('near_far', 'near/far (given visible)'),
    ('path', 'path clear yes/no'),
    ('blocked_recall', 'path blocked: said blocked'),
)


def collect_frames(episodes, every: int, log=print):
    """(image, target, truth Observation) every `every`-th perception call of the oracle."""
    frames = []
    for episode in episodes:
        calls = [0]

        def perceive(world, target, stamp_s):
            truth = oracle_observer(world, target, stamp_s)
            if calls[0] % every == 0:
                frames.append((world.render().copy(), target, truth))
            calls[0] += 1
            return truth
        simulate_episode(episode, perceive, latency_s=0.02)
        log(f'[nav_perception] episode {episode.index + 1}/{len(episodes)}: '
            f'{len(frames)} frames so far')
    return frames


def score_frames(backend, frames) -> dict:
    hits = {key: [] for key, _ in METRICS}
    for image, target, truth in frames:
        visible, bearing, distance, path = backend.score(
            image, vocabulary.target_questions(target))
        said_visible = visible.probs[0] > 0.5
        said_clear = path.probs[0] > 0.5
        is_clear = truth.path_clear_prob > 0.5
        if truth.visible_prob > 0.5:
            hits['visible_recall'].append(said_visible)
            hits['bearing'].append(
                bearing.best == max(truth.bearing_probs, key=truth.bearing_probs.get))
            hits['near_far'].append(
                (distance.best == 'near') == (truth.distance_probs['near'] > 0.5))
        else:
            hits['visible_specificity'].append(not said_visible)
        hits['path'].append(said_clear == is_clear)
        if not is_clear:
            hits['blocked_recall'].append(not said_clear)
    return {key: {'accuracy': float(np.mean(v)) if v else None, 'n': len(v)}
            for key, v in hits.items()}


def plot(results: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    names = list(results)
    width = 0.8 / len(names)
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, name in enumerate(names):
        values = [results[name][key]['accuracy'] or 0.0 for key, _ in METRICS]
        ax.bar(np.arange(len(METRICS)) + k * width, values, width, label=name)
    ax.set_xticks(np.arange(len(METRICS)) + 0.4 - width / 2)
    ax.set_xticklabels([label for _, label in METRICS], rotation=20, ha='right', fontsize=8)
    ax.set_ylim(0.7, 1.0)
    ax.set_ylabel('accuracy')
    ax.set_title('Perception on the frames the navigator sees (oracle policy, held-out)')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('models', nargs='+', help='NAME=MODEL (hub id or folder)')
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--every', type=int, default=4, help='keep every N-th frame asked about')
    parser.add_argument('--runtime', default='auto', help="hf backend's scoring runtime")
    parser.add_argument('--threads', type=int, default=1)
    parser.add_argument('--out', type=Path, required=True)
    args = parser.parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    specs = [m.split('=', 1) for m in args.models]
    if any(len(s) != 2 for s in specs):
        parser.error('models are NAME=MODEL')
    start = time.time()
    frames = collect_frames(make_episodes(args.episodes), args.every)
    results = {}
    for name, model in specs:
        backend = load_backend(model, runtime=args.runtime)
        results[name] = score_frames(backend, frames)
        print(f'[nav_perception] {name} ({model}): ' + ', '.join(
            f"{key} {r['accuracy']:.3f} (n {r['n']})" for key, r in results[name].items()
            if r['accuracy'] is not None), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    argv = sys.argv[1:] if argv is None else argv
    summary = {'command': ' '.join(['python', 'vlm_nav/bench/nav_perception.py'] + argv),
               'episodes': args.episodes, 'every': args.every, 'runtime': args.runtime,
               'frames': len(frames), 'models': dict(specs), 'results': results,
               'seconds': round(time.time() - start, 1)}
    (args.out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
    plot(results, args.out / 'accuracy.png')
    print(f'[nav_perception] {len(frames)} frames, {time.time() - start:.0f} s; '
          f'wrote {args.out}/summary.json and accuracy.png')


if __name__ == '__main__':
    main()
