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
Train the embedded tiny LLaVA from scratch on simulator views.

    python -m vlm_nav.training.train --out DIR --steps N --device cpu|cuda --seed S

Each step draws a batch of views and several questions about each (types mixed by
data.DEFAULT_MIX, hard negatives for visibility, random left-right mirroring). Each
batch row holds one image: the shared prompt prefix (role token + image tokens) once,
then every question + answer block, each attending to the prefix and to itself only,
with the positions it has in a single-question prompt. So the image is encoded and its
LM states computed once per image, not once per question, and the loss (answer tokens +
EOS only, mean per question) equals that of separate single-question sequences.
Progress (loss, per-question-type validation accuracy, steps/s, ETA) goes to stdout.
"""

import argparse
import dataclasses
import json
import math
import multiprocessing as mp
from pathlib import Path
import random
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tokenizers import Tokenizer
import torch

from vlm_nav.models import embedded
from vlm_nav.models.packing import block_layout
from vlm_nav.models.prompting import chat_prompt
from vlm_nav.perception import vocabulary
from vlm_nav.training import data, evaluate
from vlm_nav.training.forward import packed_loss, pixel_values


@dataclasses.dataclass
class PackSpec:
    """Picklable token ids for packing batches in worker processes (no transformers)."""

    prefix: List[int]
    suffixes: Dict[str, List[int]]      # question -> prompt ids after the prefix
    answers: Dict[str, List[int]]       # answer -> ids + EOS (more added on demand)
    tokenizer_json: str
    eos_id: int
    pad_id: int

    def answer_ids(self, answer: str) -> List[int]:
        ids = self.answers.get(answer)
        if ids is None:
            if not hasattr(self, '_tok'):
                self._tok = Tokenizer.from_str(self.tokenizer_json)
            ids = self._tok.encode(answer, add_special_tokens=False).ids + [self.eos_id]
            self.answers[answer] = ids
        return ids

    def __getstate__(self) -> Dict:
        return {k: v for k, v in self.__dict__.items() if k != '_tok'}

    def pack(self, groups: Sequence[Sequence[data.Sample]]) -> Dict[str, np.ndarray]:
        """
        Pack one row per image: prefix, then each question block (prompt suffix + answer).

        Laid out by vlm_nav.models.packing.block_layout.

        seg: 0 prefix, k question block k, -1 padding. Targets are given as flat
        positions (row * width + t) whose logits predict target_ids, per question.
        """
        n_pre = len(self.prefix)
        rows, poss, segs = [], [], []
        t_pos, t_ids, t_q = [], [], []
        q = 0
        for group in groups:
            ids, blocks = list(self.prefix), []
            for s in group:
                sfx, ans = self.suffixes[s.question], self.answer_ids(s.answer)
                start = len(ids)
                ids += sfx + ans
                blocks.append(len(sfx) + len(ans))
                # Position t predicts token t + 1: from the last prompt token on.
                first = start + len(sfx) - 1
                t_pos.append((len(rows), first, len(ans)))
                t_ids += ans
                t_q += [q] * len(ans)
                q += 1
            seg, pos = block_layout(n_pre, blocks)
            rows.append(ids)
            poss.append(pos)
            segs.append(seg)
        width = max(len(r) for r in rows)

        def pad(seqs, value):
            out = np.full((len(seqs), width), value, dtype=np.int64)
            for r, x in enumerate(seqs):
                out[r, :len(x)] = x
            return out

        flat = np.concatenate([r * width + np.arange(f, f + n) for r, f, n in t_pos])
        return {'input_ids': pad(rows, self.pad_id), 'position_ids': pad(poss, 0),
                'seg': pad(segs, -1), 'target_pos': flat,
                'target_ids': np.asarray(t_ids, np.int64), 'target_q': np.asarray(t_q, np.int64),
                'num_questions': np.asarray(q)}


class Encoder:
    """Token ids of prompts and answers, exactly as the processor + chat template give them."""

    def __init__(self, processor) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.image_size = int(processor.image_processor.size['height'])
        self.num_image_tokens = (
            (self.image_size // processor.patch_size) ** 2
            + processor.num_additional_image_tokens
            - (1 if processor.vision_feature_select_strategy == 'default' else 0))
        self.image_token = processor.image_token
        self.pad_id = self.tokenizer.pad_token_id
        self.eos_id = self.tokenizer.eos_token_id
        self._prompts: Dict[str, List[int]] = {}
        self._answers: Dict[str, List[int]] = {}

    def prompt_ids(self, question: str) -> List[int]:
        """Return the processor's ids for chat_prompt(question) (image token expanded)."""
        ids = self._prompts.get(question)
        if ids is None:
            text = chat_prompt(self.processor, question)
            text = text.replace(self.image_token, self.image_token * self.num_image_tokens)
            ids = self.tokenizer.encode(text, add_special_tokens=False)
            self._prompts[question] = ids
        return ids

    def answer_ids(self, answer: str) -> List[int]:
        ids = self._answers.get(answer)
        if ids is None:
            ids = self.tokenizer.encode(answer, add_special_tokens=False) + [self.eos_id]
            self._answers[answer] = ids
        return ids

    def choice_ids(self, choices: Sequence[str]) -> List[int]:
        """One token id per choice (the embedded tokenizer guarantees single tokens)."""
        ids = [self.tokenizer.encode(c, add_special_tokens=False) for c in choices]
        if any(len(i) != 1 for i in ids):
            raise ValueError(f'choices are not single tokens: {choices}')
        return [i[0] for i in ids]

    def pack_spec(self, questions: Sequence[str]) -> PackSpec:
        """Split every prompt into the shared prefix + a per-question suffix (checked)."""
        a, b = self.prompt_ids('a'), self.prompt_ids('b')
        n = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
        prefix = a[:n]
        suffixes = {}
        for q in questions:
            full = self.prompt_ids(q)
            if full[:n] != prefix:
                raise ValueError(f'prompt of {q!r} does not start with the image prefix')
            suffixes[q] = full[n:]
        closed = vocabulary.YES_NO + vocabulary.BEARINGS + vocabulary.DISTANCES
        spec = PackSpec(prefix, suffixes, {a: self.answer_ids(a) for a in closed},
                        self.tokenizer.backend_tokenizer.to_str(), self.eos_id, self.pad_id)
        probe = 'red ball left near. blue box center far. door right far.'
        if spec.answer_ids(probe) != self.answer_ids(probe):
            raise ValueError('backend tokenizer differs from the processor tokenizer')
        spec.answers.pop(probe)
        return spec

    def batch(self, samples: Sequence[data.Sample], with_answers: bool = True
              ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """
        Make an unpacked batch: input_ids, attention_mask, labels, last prompt index.

        labels are -100 outside answers; right padding (a causal model's real tokens
        never see it).
        """
        seqs, labels, last = [], [], []
        for s in samples:
            p = self.prompt_ids(s.question)
            a = self.answer_ids(s.answer) if with_answers else []
            seqs.append(p + a)
            labels.append([-100] * len(p) + a)
            last.append(len(p) - 1)
        width = max(len(x) for x in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        lab = torch.full((len(seqs), width), -100, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for r, (x, y) in enumerate(zip(seqs, labels)):
            ids[r, :len(x)] = torch.tensor(x)
            lab[r, :len(y)] = torch.tensor(y)
            mask[r, :len(x)] = 1
        return ids, mask, lab, torch.tensor(last)


def all_questions() -> List[str]:
    """Every question string training can ask."""
    targets = list(data.sim_labels()) + list(data.DISTRACTOR_LABELS)
    qs = [vocabulary.DESCRIBE_PROMPT, vocabulary.PATH_QUESTION,
          vocabulary.FREE_TEXT_EXPLORE_PROMPT]
    for t in targets:
        qs += [vocabulary.visible_question(t), vocabulary.bearing_question(t),
               vocabulary.distance_question(t), vocabulary.free_text_search_question(t)]
    return qs


# ---------------------------------------------------------------------------- batches
@dataclasses.dataclass
class BatchConfig:
    images_per_batch: int
    questions_per_image: int
    seed: int
    flip: bool = True
    mix: Optional[Dict[str, float]] = None   # question-type shares; None = data.DEFAULT_MIX


def make_batch(k: int, truth: data.Views, flipped: data.Views, spec: PackSpec,
               cfg: BatchConfig) -> Dict[str, np.ndarray]:
    """Batch number k: a pure function of (seed, k), whichever process makes it."""
    rng = np.random.default_rng([cfg.seed, k])
    idx = rng.choice(len(truth), cfg.images_per_batch, replace=False)
    flips = (rng.random(len(idx)) < 0.5) if cfg.flip else np.zeros(len(idx), bool)
    groups = [data.draw_samples(flipped if f else truth, [i], cfg.questions_per_image, rng,
                                cfg.mix)
              for i, f in zip(idx, flips)]
    batch = spec.pack(groups)
    batch['index'] = idx
    batch['flip'] = flips
    return batch


def _worker(w: int, n_workers: int, truth: data.Views, spec: PackSpec, cfg: BatchConfig,
            start: int, out: 'mp.Queue') -> None:
    flipped = _mirrored(truth)
    k = start + w
    while True:
        out.put(make_batch(k, truth, flipped, spec, cfg))
        k += n_workers


def _mirrored(truth: data.Views) -> data.Views:
    """Truth of the left-right mirrored views (pixels are flipped on the device)."""
    return dataclasses.replace(truth, bearing=(2 - truth.bearing).astype(np.int8))


class BatchStream:
    """Batches 0, 1, 2, ... in order, made here or by worker processes (same batches)."""

    def __init__(self, views: data.Views, spec: PackSpec, cfg: BatchConfig,
                 workers: int = 0, start: int = 0) -> None:
        # Workers need only the truth, not the pixels (those stay on the device).
        self.truth = dataclasses.replace(views, images=np.zeros((len(views), 1, 1, 3), np.uint8))
        self.flipped = _mirrored(self.truth)
        self.spec, self.cfg, self.k = spec, cfg, start
        self.queues: List['mp.Queue'] = []
        self.procs = []
        if workers > 0:
            ctx = mp.get_context('spawn')
            for w in range(workers):
                q = ctx.Queue(maxsize=4)
                p = ctx.Process(target=_worker, args=(w, workers, self.truth, spec, cfg,
                                                      start, q), daemon=True)
                p.start()
                self.queues.append(q)
                self.procs.append(p)

    def next_batch(self) -> Dict[str, np.ndarray]:
        if self.queues:
            batch = self.queues[self.k % len(self.queues)].get()
        else:
            batch = make_batch(self.k, self.truth, self.flipped, self.spec, self.cfg)
        self.k += 1
        return batch

    def close(self) -> None:
        for p in self.procs:
            p.terminate()


# ---------------------------------------------------------------------------- main
def build_or_load(init: Optional[Path], seed: int, labels: Sequence[str], **config):
    """(model, processor): fresh from the config, or from a save_pretrained folder."""
    if init:
        model, processor = embedded.load_embedded(init)
        return model.train(), processor
    tokenizer = embedded.build_tokenizer(labels)
    processor = embedded.build_processor(tokenizer, image_size=config['image_size'],
                                         patch_size=config['patch_size'])
    model = embedded.build_embedded_model(tokenizer, seed=seed, **config)
    return model, processor


def save(model, processor, out: Path, meta: Dict, meta_path: Optional[Path] = None) -> None:
    """save_pretrained files + training_meta.json (in the folder unless meta_path is set)."""
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    processor.save_pretrained(str(out))
    meta_path = meta_path or out / 'training_meta.json'
    meta_path.write_text(json.dumps(meta, indent=1, sort_keys=True) + '\n')


def parse_mix(text: str) -> Optional[Dict[str, float]]:
    """'describe=0.3,visible=0.3' -> data.DEFAULT_MIX with those shares replaced."""
    if not text:
        return None
    mix = dict(data.DEFAULT_MIX)
    for item in text.split(','):
        name, _, share = item.partition('=')
        if name.strip() not in mix:
            raise SystemExit(f'--mix: unknown question type {name!r}; known: {sorted(mix)}')
        mix[name.strip()] = float(share)
    return mix


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.strip().split('\n')[0])
    parser.add_argument('--out', type=Path, required=True, help='save_pretrained folder')
    parser.add_argument('--steps', type=int, default=3000)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--images-per-batch', type=int, default=16)
    parser.add_argument('--questions-per-image', type=int, default=6)
    parser.add_argument('--lr', type=float, default=2e-3)
    parser.add_argument('--min-lr-ratio', type=float, default=0.05)
    parser.add_argument('--warmup', type=int, default=150)
    parser.add_argument('--weight-decay', type=float, default=0.05)
    parser.add_argument('--train-layouts', type=int, default=6000)
    parser.add_argument('--views-per-layout', type=int, default=16)
    parser.add_argument('--val-layouts', type=int, default=300)
    parser.add_argument('--val-per-type', type=int, default=150)
    parser.add_argument('--eval-every', type=int, default=250)
    parser.add_argument('--log-every', type=int, default=25)
    parser.add_argument('--workers', type=int, default=0,
                        help='processes rendering frames not cached yet (0: all cores)')
    parser.add_argument('--batch-workers', type=int, default=0,
                        help='processes making batches (0: in this process); a GPU needs '
                        'several to be kept busy')
    parser.add_argument('--cache', type=Path, default=data.DEFAULT_CACHE)
    parser.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    parser.add_argument('--init', type=Path, default=None,
                        help='continue from this save_pretrained folder (fresh optimizer)')
    parser.add_argument('--time-budget', type=float, default=0.0,
                        help='seconds of training; the step count (and the cosine schedule) '
                        'fit it at the measured speed, refitted as the speed settles')
    parser.add_argument('--meta', type=Path, default=None,
                        help='where to write training_meta.json (default: in --out)')
    parser.add_argument('--bf16', action='store_true', help='bf16 autocast (default on cuda)')
    parser.add_argument('--no-flip', action='store_true', help='no left-right mirroring')
    parser.add_argument('--mix', default='',
                        help='question-type shares overriding data.DEFAULT_MIX, e.g. '
                        "'describe=0.3,visible=0.3' (the rest keep theirs; renormalised)")
    parser.add_argument('--image-size', type=int, default=embedded.IMAGE_SIZE)
    parser.add_argument('--patch-size', type=int, default=embedded.PATCH_SIZE)
    parser.add_argument('--vision-hidden', type=int, default=embedded.VISION_HIDDEN)
    parser.add_argument('--vision-layers', type=int, default=embedded.VISION_LAYERS)
    parser.add_argument('--text-hidden', type=int, default=embedded.TEXT_HIDDEN)
    parser.add_argument('--text-layers', type=int, default=embedded.TEXT_LAYERS)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    t0 = time.time()
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    device = torch.device(args.device)
    use_bf16 = args.bf16 or device.type == 'cuda'
    if device.type == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = True

    def log(msg: str) -> None:
        print(f'[{time.time() - t0:7.1f}s] {msg}', flush=True)

    train = data.load_views(data.TRAIN_SEED_BASE, args.train_layouts, args.views_per_layout,
                            args.image_size, workers=args.workers, cache=args.cache, log=log)
    val = data.load_views(data.VAL_SEED_BASE, args.val_layouts, 4, args.image_size,
                          workers=args.workers, cache=args.cache, log=log)
    log(f'train views {len(train)} ({args.train_layouts} layouts), val views {len(val)}')

    config = {'image_size': args.image_size, 'patch_size': args.patch_size,
              'vision_hidden': args.vision_hidden, 'vision_layers': args.vision_layers,
              'text_hidden': args.text_hidden, 'text_layers': args.text_layers}
    model, processor = build_or_load(args.init, args.seed, data.sim_labels(), **config)
    model.to(device).train()
    n_params = sum(p.numel() for p in model.parameters())
    log(f'model {n_params / 1e6:.2f} M params, device {device}, bf16 {use_bf16}')
    encoder = Encoder(processor)
    spec = encoder.pack_spec(all_questions())
    val_samples = data.fixed_eval_samples(val, args.val_per_type, seed=args.seed + 1)
    train_images = torch.from_numpy(train.images).to(device)

    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and 'embed' not in n]
    other = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and 'embed' not in n)]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay},
                             {'params': other, 'weight_decay': 0.0}],
                            lr=args.lr, betas=(0.9, 0.98), eps=1e-8)
    total = [args.steps]

    def lr_at(step: int) -> float:
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = min(1.0, (step - args.warmup) / max(1, total[0] - args.warmup))
        cos = 0.5 * (1 + math.cos(math.pi * frac))
        return args.lr * (args.min_lr_ratio + (1 - args.min_lr_ratio) * cos)

    stream = BatchStream(train, spec, BatchConfig(args.images_per_batch,
                                                  args.questions_per_image, args.seed,
                                                  not args.no_flip, parse_mix(args.mix)),
                         workers=args.batch_workers)
    meta = {'args': {k: str(v) for k, v in vars(args).items()}, 'params': n_params,
            'train_views': len(train), 'sim_fingerprint': data.sim_fingerprint(),
            'torch': torch.__version__, 'device_name': (torch.cuda.get_device_name()
                                                        if device.type == 'cuda' else 'cpu')}
    step, seen = 0, 0

    def refit(rate: float, always_log: bool = False) -> None:
        """Fit the step count (and so the cosine schedule) to the time budget left."""
        fit = int(rate * (args.time_budget - (time.time() - t_train))) + step
        fitted = max(step + 1, min(args.steps, fit))
        if always_log or abs(fitted - total[0]) > 0.02 * total[0]:
            log(f'time budget {args.time_budget:.0f} s at {rate:.1f} steps/s: {fitted} steps')
        total[0] = fitted

    loss_acc = torch.zeros((), device=device)    # summed on the device: no sync per step
    t_train = t_log = time.time()
    t_mid = None
    while step < total[0]:
        host = stream.next_batch()
        n_q = int(host.pop('num_questions'))
        batch = {k: torch.from_numpy(v).to(device, non_blocking=True) for k, v in host.items()}
        pixels = pixel_values(train_images[batch['index']], processor)
        pixels = torch.where(batch['flip'][:, None, None, None], pixels.flip(-1), pixels)
        for group in opt.param_groups:
            group['lr'] = lr_at(step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = packed_loss(model, pixels, batch, n_q)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += n_q
        loss_acc += loss.detach().float()
        if step == 20:
            t_mid = time.time()
        if args.time_budget and step == 60:
            # Fit the schedule to the time left, measured after the first steps.
            refit(40 / (time.time() - t_mid), always_log=True)
        if step % args.log_every == 0:
            now = time.time()
            rate = args.log_every / (now - t_log)
            t_log = now
            if args.time_budget and step > 60:
                # Refit at the settled rate: on a GPU the batch workers and kernels warm up
                # over the first minute, and a fit from then alone left about half of
                # the budget unused (stage 3: 163 s of 320).
                refit(rate)
            eta = (total[0] - step) / max(rate, 1e-9)
            log(f'step {step}/{total[0]} loss {float(loss_acc) / args.log_every:.4f} '
                f'lr {lr_at(step):.2e} {rate:.2f} steps/s ({rate * n_q:.0f} questions/s) '
                f'ETA {eta / 60:.1f} min')
            loss_acc.zero_()
        if step % args.eval_every == 0 or step == total[0]:
            t_eval = time.time()
            model.eval()
            metrics = evaluate.fast_metrics(model, encoder, val, val_samples, device, use_bf16)
            model.train()
            log(f'val step {step}: ' + evaluate.format_metrics(metrics))
            meta.update(step=step, val=metrics, seen_questions=seen,
                        train_seconds=round(time.time() - t_train, 1))
            save(model, processor, args.out, meta, args.meta)
            t_log += time.time() - t_eval     # steps/s counts training only
    stream.close()
    log(f'done: {step} steps, {seen} questions in {time.time() - t_train:.0f} s; '
        f'saved to {args.out}')


if __name__ == '__main__':
    main(sys.argv[1:])
