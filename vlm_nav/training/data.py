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
Simulator views and the question/answer samples built from their ground truth.

Views (image + per-object truth) are rendered in worker processes, in shards of
layouts, and cached as .npz under data_cache/ (gitignored), keyed by a fingerprint of
the simulator's source so a changed simulator never reuses stale frames. Questions are
drawn on the fly from the truth, with exactly the strings of vlm_nav.perception.vocabulary.
"""

import argparse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
import functools
import hashlib
import importlib.util
import lzma
import multiprocessing as mp
import os
from pathlib import Path
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from vlm_nav.perception import vocabulary

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CACHE = REPO_ROOT / 'data_cache'

# Layout seed ranges: training, validation (model selection), and held-out test
# layouts (evaluate.py, test_embedded_model.py) that training never sees.
TRAIN_SEED_BASE = 0
VAL_SEED_BASE = 1_000_000
TEST_SEED_BASE = 2_000_000

LAYOUTS_PER_SHARD = 250
QTYPES = ('visible', 'bearing', 'distance', 'path', 'describe')
# Share of each question type in a training batch. Visibility is the hardest and the
# one navigation leans on most; descriptions carry many tokens each.
# The original design's two free-text prompts are taught too (original_*), so the
# baseline policy can be measured on the same model instead of on gibberish.
DEFAULT_MIX = {'visible': 0.34, 'bearing': 0.19, 'distance': 0.13, 'path': 0.11,
               'describe': 0.15, 'original_search': 0.05, 'original_explore': 0.03}
# Targets never in the simulator: 'no' for anything it cannot show.
DISTRACTOR_LABELS = (
    'purple ball', 'white box', 'black chair', 'orange cone', 'pink plant', 'table',
    'person', 'robot', 'window', 'sofa', 'lamp', 'cup', 'bottle', 'dog', 'cat', 'bed',
    'red table', 'blue door', 'green lamp', 'yellow cup')
MAX_OBJECTS = 8


@functools.lru_cache(maxsize=1)
def sim_labels() -> Tuple[str, ...]:
    """Return the simulator's object labels (from layout.py alone where pybullet is missing)."""
    try:
        from vlm_nav.sim import OBJECT_LABELS
    except ImportError:     # vlm_nav.sim imports pybullet; layout.py needs only numpy
        path = REPO_ROOT / 'vlm_nav' / 'sim' / 'layout.py'
        spec = importlib.util.spec_from_file_location('_vlm_nav_sim_layout', path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        OBJECT_LABELS = module.OBJECT_LABELS
    return tuple(OBJECT_LABELS)


def sim_fingerprint() -> str:
    """Short hash of the simulator's source: a changed simulator means new data."""
    sim_dir = REPO_ROOT / 'vlm_nav' / 'sim'
    digest = hashlib.sha1()
    for name in ('layout.py', 'world.py', 'dataset.py'):
        path = sim_dir / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


@dataclass
class Views:
    """Rendered views and per-object truth; object slots padded with label -1."""

    images: np.ndarray          # (N, S, S, 3) uint8
    labels: np.ndarray          # (N, K) int16, index into sim_labels(), -1 = empty slot
    visible: np.ndarray         # (N, K) bool
    bearing: np.ndarray         # (N, K) int8, index into vocabulary.BEARINGS
    near: np.ndarray            # (N, K) bool
    pixels: np.ndarray          # (N, K) int32
    path_clear: np.ndarray      # (N,) bool
    layout_seed: np.ndarray     # (N,) int64
    view_seed: np.ndarray       # (N,) int64

    def __len__(self) -> int:
        return len(self.images)

    def arrays(self) -> Dict[str, np.ndarray]:
        return dict(self.__dict__)

    @classmethod
    def concat(cls, parts: Sequence['Views']) -> 'Views':
        return cls(**{k: np.concatenate([getattr(p, k) for p in parts])
                      for k in cls.__dataclass_fields__})

    def subset(self, idx: np.ndarray) -> 'Views':
        return Views(**{k: v[idx] for k, v in self.arrays().items()})

    def truth(self, i: int) -> List[vocabulary.SeenObject]:
        """Return the visible objects of view i, as the description grammar sees them."""
        labels = sim_labels()
        return [vocabulary.SeenObject(labels[lab], vocabulary.BEARINGS[b],
                                      vocabulary.DISTANCES[0 if n else 1])
                for lab, vis, b, n in zip(self.labels[i], self.visible[i], self.bearing[i],
                                          self.near[i]) if lab >= 0 and vis]

    def description(self, i: int) -> str:
        return vocabulary.format_description(self.truth(i))


def render_views(layout_seeds: Sequence[int], views_per_layout: int,
                 image_size: int = 96) -> Views:
    """Render views_per_layout views of each layout in this process."""
    from vlm_nav.sim import sample_view

    index = {lab: i for i, lab in enumerate(sim_labels())}
    n = len(layout_seeds) * views_per_layout
    out = Views(
        images=np.zeros((n, image_size, image_size, 3), np.uint8),
        labels=np.full((n, MAX_OBJECTS), -1, np.int16),
        visible=np.zeros((n, MAX_OBJECTS), bool), bearing=np.zeros((n, MAX_OBJECTS), np.int8),
        near=np.zeros((n, MAX_OBJECTS), bool), pixels=np.zeros((n, MAX_OBJECTS), np.int32),
        path_clear=np.zeros(n, bool), layout_seed=np.zeros(n, np.int64),
        view_seed=np.zeros(n, np.int64))
    row = 0
    for layout_seed in layout_seeds:
        for view_seed in range(views_per_layout):
            image, truths, clear = sample_view(int(layout_seed), view_seed, image_size)
            out.images[row] = image
            for k, t in enumerate(truths[:MAX_OBJECTS]):
                out.labels[row, k] = index[t.label]
                out.visible[row, k] = t.visible
                out.bearing[row, k] = vocabulary.BEARINGS.index(t.image_bearing)
                out.near[row, k] = t.distance == vocabulary.DISTANCES[0]
                out.pixels[row, k] = t.pixel_count
            out.path_clear[row] = clear
            out.layout_seed[row] = layout_seed
            out.view_seed[row] = view_seed
            row += 1
    # Each World holds a pybullet client; free them when a shard is done.
    from vlm_nav.sim import dataset as sim_dataset
    while sim_dataset._worlds:
        sim_dataset._worlds.popitem()[1].close()
    return out


def _shard_path(cache: Path, first: int, count: int, vpl: int, size: int) -> Path:
    return cache / f'views_{sim_fingerprint()}_s{size}_v{vpl}_{first}_{count}.npz'


def _render_shard(args: Tuple[str, int, int, int, int]) -> str:
    path, first, count, vpl, size = args
    views = render_views(range(first, first + count), vpl, size)
    _save(views, Path(path))
    return path


def _save(views: Views, path: Path) -> None:
    """
    Save views as an npz with the images xz-compressed.

    Flat-shaded frames shrink ~100x (~290 B each), so a whole training set travels to a
    machine that cannot render it.
    """
    arrays = views.arrays()
    images = arrays.pop('images')
    arrays['images_xz'] = np.frombuffer(lzma.compress(images.tobytes(), preset=6), np.uint8)
    arrays['images_shape'] = np.asarray(images.shape)
    tmp = path.with_name(path.name + '.tmp.npz')
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)


def _pybullet_available() -> bool:
    try:
        import pybullet  # noqa: F401
    except ImportError:
        return False
    return True


def _foreign_shard(path: Path) -> Optional[Path]:
    """Find the same shard cached under another simulator fingerprint, if any."""
    spec = path.name.split('_', 2)[2]
    found = sorted(path.parent.glob(f'views_*_{spec}'))
    return found[-1] if found else None


def adopt_shards(cache: Path = DEFAULT_CACHE, check_layouts: int = 2, log=print) -> int:
    """
    Rename shards of an older simulator fingerprint that the current one renders alike.

    The first check_layouts layouts are compared; returns how many shards were renamed.
    """
    current = sim_fingerprint()
    adopted = 0
    for path in sorted(Path(cache).glob('views_*.npz')):
        if '.tmp' in path.name:
            continue
        fp, rest = path.name[len('views_'):].split('_', 1)
        if fp == current:
            continue
        target = path.with_name(f'views_{current}_{rest}')
        if target.exists():
            continue
        old = _load(path)
        vpl = int(rest.split('_')[1][1:])
        size = int(rest.split('_')[0][1:])
        first = int(old.layout_seed[0])
        n = check_layouts * vpl
        new = render_views(range(first, first + check_layouts), vpl, size)
        same = all(np.array_equal(getattr(old, k)[:n], getattr(new, k))
                   for k in Views.__dataclass_fields__)
        log(f'{path.name}: {"adopted" if same else "differs, left alone"}')
        if same:
            os.replace(path, target)
            adopted += 1
    return adopted


def _load(path: Path) -> Views:
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    if 'images_xz' in arrays:
        raw = lzma.decompress(arrays.pop('images_xz').tobytes())
        arrays['images'] = np.frombuffer(raw, np.uint8).reshape(arrays.pop('images_shape'))
    return Views(**{k: arrays[k] for k in Views.__dataclass_fields__})


def _load_all(paths: Sequence[Path]) -> Views:
    # lzma releases the GIL: threads decompress shards in parallel.
    with ThreadPoolExecutor(max_workers=min(16, os.cpu_count() or 1)) as pool:
        return Views.concat(list(pool.map(_load, paths)))


def recompress_cache(cache: Path = DEFAULT_CACHE, log=print) -> None:
    """Rewrite shards saved with zlib-compressed images in the xz format."""
    for path in sorted(Path(cache).glob('views_*.npz')):
        if '.tmp' in path.name:
            continue
        with np.load(path) as data:
            if 'images_xz' in data.files and data['images_xz'].nbytes < path.stat().st_size * 0.9:
                continue
        before = path.stat().st_size
        _save(_load(path), path)
        log(f'{path.name}: {before / 1e6:.2f} -> {path.stat().st_size / 1e6:.2f} MB')


def load_views(first_seed: int, n_layouts: int, views_per_layout: int,
               image_size: int = 96, workers: int = 0,
               cache: Optional[Path] = DEFAULT_CACHE, log=print) -> Views:
    """
    Load views of layouts first_seed..first_seed+n_layouts-1, rendered or from the cache.

    Rendering runs in `workers` processes (0: all cores), one shard of layouts each.
    """
    paths = ensure_views(first_seed, n_layouts, views_per_layout, image_size, workers, cache,
                         log)
    return _load_all(paths)


def ensure_views(first_seed: int, n_layouts: int, views_per_layout: int,
                 image_size: int = 96, workers: int = 0,
                 cache: Optional[Path] = DEFAULT_CACHE, log=print) -> List[Path]:
    """Render the shards that are not cached yet; the paths of all shards."""
    cache = Path(cache or DEFAULT_CACHE)
    cache.mkdir(parents=True, exist_ok=True)
    jobs, paths = [], []
    for first in range(first_seed, first_seed + n_layouts, LAYOUTS_PER_SHARD):
        count = min(LAYOUTS_PER_SHARD, first_seed + n_layouts - first)
        path = _shard_path(cache, first, count, views_per_layout, image_size)
        paths.append(path)
        if not path.exists() and not _pybullet_available():
            # No renderer here (e.g. a GPU machine without pybullet): use frames that
            # were rendered elsewhere, possibly by a slightly different simulator source.
            foreign = _foreign_shard(path)
            if foreign is None:
                raise RuntimeError(f'{path.name} is not cached and pybullet is missing: '
                                   'render it elsewhere with python -m vlm_nav.training.data')
            log(f'warning: pybullet missing, using {foreign.name}')
            paths[-1] = foreign
        elif not path.exists():
            jobs.append((str(path), first, count, views_per_layout, image_size))
    if jobs:
        workers = min(workers or os.cpu_count() or 1, len(jobs))
        log(f'rendering {len(jobs)} shard(s) of {LAYOUTS_PER_SHARD} layouts x '
            f'{views_per_layout} views with {workers} worker(s) ...')
        start = time.time()
        if workers == 1:
            for job in jobs:
                _render_shard(job)
        else:
            # spawn: no pybullet client or torch thread pool is inherited.
            with mp.get_context('spawn').Pool(workers) as pool:
                for done, _ in enumerate(pool.imap_unordered(_render_shard, jobs), 1):
                    if done % max(1, len(jobs) // 10) == 0:
                        log(f'  {done}/{len(jobs)} shards, {time.time() - start:.0f} s')
        log(f'rendered in {time.time() - start:.1f} s')
    return paths


# ------------------------------------------------------------------ questions
@dataclass(frozen=True)
class Sample:
    view: int                   # index into Views
    qtype: str
    question: str
    answer: str
    choices: Tuple[str, ...] = ()


def _target_label(view: Views, i: int, rng: np.random.Generator, labels: Sequence[str],
                  positive: Optional[bool] = None) -> Tuple[str, bool]:
    """
    Draw a target for 'Is there a ...?': positives, and hard negatives for the rest.

    Positives: 70 % where something is in view, or as forced by `positive`.

    Of the negatives, half are objects in the room but not in view (behind the camera,
    occluded, or too few pixels); the rest are absent from the layout, a third of those
    sharing a colour or shape with something in view, and a few never in the simulator.
    """
    slots = view.labels[i] >= 0
    vis = view.visible[i] & slots
    present = set(view.labels[i][slots].tolist())
    visible = view.labels[i][vis].tolist()
    hidden = view.labels[i][slots & ~view.visible[i]].tolist()
    if positive is None:
        positive = rng.random() < 0.7
    if visible and positive:
        return labels[visible[rng.integers(len(visible))]], True
    if hidden and rng.random() < 0.5:
        return labels[hidden[rng.integers(len(hidden))]], False
    if rng.random() < 0.08:
        return DISTRACTOR_LABELS[rng.integers(len(DISTRACTOR_LABELS))], False
    absent = [k for k in range(len(labels)) if k not in present]
    if visible and rng.random() < 0.35:
        seen = [labels[k].split() for k in visible]
        confusers = [k for k in absent if any(
            len(s) > 1 and len(labels[k].split()) > 1
            and (labels[k].split()[0] == s[0] or labels[k].split()[-1] == s[-1]) for s in seen)]
        if confusers:
            absent = confusers
    return labels[absent[rng.integers(len(absent))]], False


def make_sample(view: Views, i: int, qtype: str, rng: np.random.Generator,
                positive: Optional[bool] = None) -> Sample:
    """
    Make one question of type qtype about view i, with its ground-truth answer.

    bearing/distance need a visible object; without one they become 'describe' (whose
    'nothing.' is then the answer): a 'visible' fallback could only ever be 'no'.
    """
    labels = sim_labels()
    vis = np.flatnonzero((view.labels[i] >= 0) & view.visible[i])
    if qtype in ('bearing', 'distance') and len(vis) == 0:
        qtype = 'describe'
    if qtype == 'visible':
        target, seen = _target_label(view, i, rng, labels, positive)
        return Sample(i, qtype, vocabulary.visible_question(target),
                      vocabulary.YES_NO[0 if seen else 1], vocabulary.YES_NO)
    if qtype in ('bearing', 'distance'):
        k = vis[rng.integers(len(vis))]
        target = labels[view.labels[i, k]]
        if qtype == 'bearing':
            return Sample(i, qtype, vocabulary.bearing_question(target),
                          vocabulary.BEARINGS[view.bearing[i, k]], vocabulary.BEARINGS)
        return Sample(i, qtype, vocabulary.distance_question(target),
                      vocabulary.DISTANCES[0 if view.near[i, k] else 1], vocabulary.DISTANCES)
    if qtype == 'path':
        return Sample(i, qtype, vocabulary.PATH_QUESTION,
                      vocabulary.YES_NO[0 if view.path_clear[i] else 1], vocabulary.YES_NO)
    if qtype == 'describe':
        return Sample(i, qtype, vocabulary.DESCRIBE_PROMPT, view.description(i))
    if qtype == 'original_search':
        target, seen = _target_label(view, i, rng, labels, positive)
        answer = vocabulary.free_text_search_answer(target)
        if seen:
            k = next(k for k in vis if labels[view.labels[i, k]] == target)
            answer = vocabulary.free_text_search_answer(
                target, vocabulary.BEARINGS[view.bearing[i, k]],
                vocabulary.DISTANCES[0 if view.near[i, k] else 1])
        return Sample(i, qtype, vocabulary.free_text_search_question(target), answer)
    if qtype == 'original_explore':
        return Sample(i, qtype, vocabulary.FREE_TEXT_EXPLORE_PROMPT,
                      vocabulary.free_text_explore_answer(bool(view.path_clear[i]),
                                                          view.description(i)))
    raise ValueError(f'unknown question type {qtype!r}')


def draw_samples(view: Views, images: Sequence[int], per_image: int,
                 rng: np.random.Generator, mix: Optional[Dict[str, float]] = None
                 ) -> List[Sample]:
    """Up to per_image distinct questions about each listed view, types drawn by mix."""
    mix = mix or DEFAULT_MIX
    types = list(mix)
    probs = np.array([mix[t] for t in types], float)
    probs /= probs.sum()
    samples = []
    for i in images:
        asked = set()
        for qtype in rng.choice(types, size=per_image, replace=True, p=probs):
            s = make_sample(view, int(i), str(qtype), rng)
            if s.question not in asked:     # a repeat would only re-weight one answer
                asked.add(s.question)
                samples.append(s)
    return samples


def fixed_eval_samples(view: Views, per_type: int, seed: int = 0) -> List[Sample]:
    """
    Make a reproducible evaluation set: per_type questions of each type over the views.

    Visible questions: half positives, half negatives (out of view or absent, drawn as in
    training).
    """
    rng = np.random.default_rng(seed)
    samples: List[Sample] = []
    has_vis = np.flatnonzero(((view.labels >= 0) & view.visible).any(1))
    for qtype in QTYPES:
        if qtype == 'visible':
            pos = rng.choice(has_vis, size=min(per_type // 2, len(has_vis)), replace=False)
            neg = rng.choice(len(view), size=min(per_type - len(pos), len(view)), replace=False)
            samples += [make_sample(view, int(i), qtype, rng, positive=True) for i in pos]
            samples += [make_sample(view, int(i), qtype, rng, positive=False) for i in neg]
            continue
        pool = has_vis if qtype in ('bearing', 'distance') else np.arange(len(view))
        for i in rng.choice(pool, size=min(per_type, len(pool)), replace=False):
            samples.append(make_sample(view, int(i), qtype, rng))
    return samples


def flip_views(view: Views, idx: np.ndarray) -> None:
    """Mirror views idx left-right in place: image columns reversed, left <-> right."""
    view.images[idx] = view.images[idx, :, ::-1]
    b = view.bearing[idx]
    view.bearing[idx] = np.where(b == 1, 1, 2 - b)


def main(argv: Optional[List[str]] = None) -> None:
    """Render and cache datasets ahead of training (e.g. to carry to another machine)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument('--first-seed', type=int, default=TRAIN_SEED_BASE)
    parser.add_argument('--layouts', type=int, default=1000)
    parser.add_argument('--views-per-layout', type=int, default=16)
    parser.add_argument('--image-size', type=int, default=96)
    parser.add_argument('--workers', type=int, default=0)
    parser.add_argument('--cache', type=Path, default=DEFAULT_CACHE)
    parser.add_argument('--adopt', action='store_true',
                        help='first keep cached shards of an older simulator source that '
                        'still render identically')
    parser.add_argument('--recompress', action='store_true',
                        help='first rewrite zlib shards in the smaller xz format')
    args = parser.parse_args(argv)
    if args.adopt:
        adopt_shards(args.cache)
    if args.recompress:
        recompress_cache(args.cache)
    paths = ensure_views(args.first_seed, args.layouts, args.views_per_layout,
                         args.image_size, args.workers, args.cache)
    print(f'{len(paths)} shard(s) cached under {args.cache}', file=sys.stderr)


if __name__ == '__main__':
    main()
