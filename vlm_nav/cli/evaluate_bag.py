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
Offline evaluation: replay a recorded bag's frames through a model and score the answers.

Answers are scored against the simulator's ground truth, recorded beside the frames.

    vlm-nav evaluate-bag BAG [--model PATH_OR_ID] [--out DIR] [--max-frames N]

The bag (any rosbag2 vlm_nav.ros.bags opens) needs camera frames (sensor_msgs/Image in
any encoding vlm_nav.ros.image converts, or CompressedImage; its only camera, or
`--camera-topic`) and sim/ground_truth (the JSON sim_node publishes with the same stamp as
each frame); `vlm-nav bringup sim --record DIR` records one. Frames that can't be decoded
and frames without ground truth are skipped and counted; only a bag where no frame could
be scored is an error.

Every frame is asked exactly the closed-set questions the vlm_node asks
(vlm_nav.perception.vocabulary) for every object of the layout, through the backend the
vlm_node loads (vlm_nav.models.load_backend), so the numbers describe what the navigator
would get. Scores: visible / bearing / near-far / path-clear accuracy,
agreement of the navigation policy's decision on the model's answers with its decision on
the truth, and latency, each with its chance or majority baseline. No ROS graph is needed.
"""

import argparse
from collections import Counter
from dataclasses import dataclass
import json
import math
from pathlib import Path
import time
from typing import Dict, List, Optional, Sequence

import numpy as np

from vlm_nav.models import load_backend
from vlm_nav.nav.policy import Decision, NavigationPolicy
from vlm_nav.perception import vocabulary
from vlm_nav.perception.vocabulary import BEARINGS, DISTANCES, Observation, YES_NO
from vlm_nav.ros.bags import Bag, BagError, topic_name

TRUTH_TOPIC = '/sim/ground_truth'


@dataclass
class LabelledFrame:
    stamp_s: float
    rgb: np.ndarray
    truth: Dict          # sim_node's ground truth JSON for this frame


class LabelledFrames(list):
    """The LabelledFrames of a bag, with its camera and the frames skipped, by reason."""

    def __init__(self, frames=(), bag: str = '', camera: str = '', note: str = ''):
        super().__init__(frames)
        self.bag, self.camera, self.note = bag, camera, note
        self.seen = 0               # camera frames looked at
        self.refused = 0            # ... that could not be decoded or converted
        self.first_refusal = ''
        self.unpaired = 0           # ... with no ground truth of their stamp
        self.bad_truth = 0          # ground truth messages that are not sim_node's JSON

    def skipped(self) -> Dict[str, object]:
        return {'refused': self.refused, 'no_truth': self.unpaired,
                'bad_truth': self.bad_truth, 'first_refusal': self.first_refusal}

    def why_none(self) -> str:
        """Return why no frame could be scored, and what to do: one line."""
        if not self.seen:
            return f'{self.bag} has no frame on {self.camera}'
        parts = []
        if self.refused:
            parts.append(f'{self.refused} refused ({self.first_refusal})')
        if self.unpaired:
            parts.append(f'{self.unpaired} without ground truth of the same stamp')
        return (f'no frame of {self.bag} could be scored: of {self.seen} frames on '
                f'{self.camera}, {", ".join(parts)}; frames and ground truth must share '
                'stamps as sim_node publishes them (check --camera-topic and --truth-topic)')


def read_labelled_frames(bag: str, image_topic: str = '', truth_topic: str = TRUTH_TOPIC,
                         tolerance_s: float = 0.005, max_frames: Optional[int] = None,
                         distro: str = '') -> LabelledFrames:
    """
    Return the bag's frames paired with the ground truth of their stamp.

    image_topic '' is the bag's only camera. Frames that can't be decoded or converted, and
    frames without ground truth, are skipped and counted (LabelledFrames.skipped()); only
    frames with ground truth are decoded, so a long bag does not fill memory.
    """
    from vlm_nav.ros.image import compressed_to_rgb, image_to_rgb   # deferred: ROS messages
    with Bag(bag, distro) as opened:
        camera = opened.select_camera(image_topic)
        truth_topic = topic_name(truth_topic)
        if truth_topic not in opened.topics():
            raise BagError(f'{bag} has no {truth_topic}, the ground truth evaluate-bag scores '
                           'against: record a simulator run (`vlm-nav bringup sim --record '
                           'DIR`) or give --truth-topic')
        frames = LabelledFrames(bag=str(bag), camera=camera.topic, note=opened.describe())
        truths = []
        for _, msgtype, _, raw in opened.messages([truth_topic]):
            try:
                truth = json.loads(opened.deserialize(raw, msgtype).data)
                truths.append((float(truth['stamp']), truth))
            except Exception:  # noqa: B902 - not sim_node's JSON: counted, not fatal
                frames.bad_truth += 1
        truth_stamps = np.array([s for s, _ in truths])
        convert = compressed_to_rgb if camera.compressed else image_to_rgb
        for _, msgtype, _, raw in opened.messages([camera.topic]):
            if max_frames and len(frames) >= max_frames:
                break
            frames.seen += 1
            try:
                msg = opened.deserialize(raw, msgtype)
                stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
            except Exception as error:  # noqa: B902 - any decoder's error: one bad frame
                frames.refused += 1
                frames.first_refusal = frames.first_refusal or f'{error}'.strip()
                continue
            i = int(np.argmin(np.abs(truth_stamps - stamp))) if len(truths) else -1
            if i < 0 or abs(truth_stamps[i] - stamp) > tolerance_s:
                frames.unpaired += 1
                continue
            try:
                rgb = convert(msg)
            except Exception as error:  # noqa: B902 - ImageError and decoders' errors alike
                frames.refused += 1
                frames.first_refusal = frames.first_refusal or f'{error}'.strip()
                continue
            frames.append(LabelledFrame(stamp, rgb, truths[i][1]))
    frames.sort(key=lambda frame: frame.stamp_s)
    return frames


def action(decision: Decision) -> str:
    """Return what a decision makes the robot do, coarsely: the unit decision agreement counts."""
    if decision.arrived:
        return 'arrive'
    if decision.linear > 0.05:
        return 'forward'
    if abs(decision.angular) > 1e-3:
        return 'turn left' if decision.angular > 0 else 'turn right'
    return 'stop'


def _decide(label: str, obs: Observation) -> str:
    policy = NavigationPolicy()          # fresh: judge this frame alone, not a history
    policy.reset('search', label)
    return action(policy.decide(obs, 0.0))


def _truth_observation(label: str, stamp: float, item: Dict, path_clear: bool) -> Observation:
    one_hot = lambda labels, hot: {k: float(k == hot) for k in labels}  # noqa: E731
    return Observation(label, stamp, float(item['visible']),
                       one_hot(BEARINGS, item['image_bearing']),
                       one_hot(DISTANCES, item['distance']), float(path_clear))


def _summary(values: Sequence[float]) -> Dict[str, float]:
    if not values:
        return {'mean': math.nan, 'p50': math.nan, 'p95': math.nan, 'max': math.nan}
    a = np.asarray(values, dtype=float)
    return {'mean': float(a.mean()), 'p50': float(np.percentile(a, 50)),
            'p95': float(np.percentile(a, 95)), 'max': float(a.max())}


def _majority(labels: Sequence) -> float:
    return Counter(labels).most_common(1)[0][1] / len(labels) if labels else math.nan


def _accuracy(hits: Sequence[bool]) -> float:
    return sum(hits) / len(hits) if hits else math.nan


def evaluate(frames: Sequence[LabelledFrame], backend) -> Dict:
    """Ask the backend the navigator's questions on every frame; score against the truth."""
    visible, bearing, distance, path, agree, agree_visible = [], [], [], [], [], []
    truth_visible, truth_bearing, truth_distance, truth_path = [], [], [], []
    p_truth, latencies = [], []
    actions_model, actions_truth = Counter(), Counter()
    per_label: Dict[str, Dict[str, List[bool]]] = {}
    for frame in frames:
        items = frame.truth['objects']
        questions = [(vocabulary.PATH_QUESTION, YES_NO)]
        for item in items:
            questions += vocabulary.target_questions(item['label'])[:3]
        started = time.perf_counter()
        answers = backend.score(frame.rgb, questions)
        latencies.append(time.perf_counter() - started)
        path_answer = answers[0]
        clear = bool(frame.truth['path_clear'])
        path.append(path_answer.best == ('yes' if clear else 'no'))
        truth_path.append(clear)
        p_truth.append(path_answer.probs[0 if clear else 1])
        for k, item in enumerate(items):
            v, b, d = answers[1 + 3 * k: 4 + 3 * k]
            seen = bool(item['visible'])
            hit = v.best == ('yes' if seen else 'no')
            visible.append(hit)
            truth_visible.append(seen)
            p_truth.append(v.probs[0 if seen else 1])
            stats = per_label.setdefault(item['label'], {'visible': [], 'bearing': []})
            stats['visible'].append(hit)
            if seen:      # bearing and distance are only defined for what can be seen
                bearing.append(b.best == item['image_bearing'])
                distance.append(d.best == item['distance'])
                truth_bearing.append(item['image_bearing'])
                truth_distance.append(item['distance'])
                stats['bearing'].append(bearing[-1])
            model_obs = Observation(item['label'], frame.stamp_s, float(v.probs[0]),
                                    dict(zip(b.choices, b.probs)),
                                    dict(zip(d.choices, d.probs)),
                                    float(path_answer.probs[0]))
            mine = _decide(item['label'], model_obs)
            truth = _decide(item['label'], _truth_observation(item['label'], frame.stamp_s,
                                                              item, clear))
            agree.append(mine == truth)
            if seen:
                agree_visible.append(mine == truth)
            actions_model[mine] += 1
            actions_truth[truth] += 1
    return {
        'frames': len(frames),
        'pairs': len(visible),
        'visible_pairs': len(bearing),
        'metrics': {
            'visible_accuracy': _accuracy(visible),
            'bearing_accuracy': _accuracy(bearing),
            'distance_accuracy': _accuracy(distance),
            'path_accuracy': _accuracy(path),
            'decision_agreement': _accuracy(agree),
            'decision_agreement_visible': _accuracy(agree_visible),
            'mean_p_truth': float(np.mean(p_truth)) if p_truth else math.nan,
        },
        'baselines': {
            'visible_majority': _majority(truth_visible),
            'bearing_chance': 1.0 / len(BEARINGS), 'bearing_majority': _majority(truth_bearing),
            'distance_chance': 1.0 / len(DISTANCES),
            'distance_majority': _majority(truth_distance),
            'path_majority': _majority(truth_path),
            'decision_majority': (actions_truth.most_common(1)[0][1] / sum(
                actions_truth.values())) if actions_truth else math.nan,
        },
        'actions': {'model': dict(actions_model), 'truth': dict(actions_truth)},
        'latency_s': _summary(latencies),
        'per_label': {label: {k: _accuracy(v) for k, v in stats.items()}
                      for label, stats in sorted(per_label.items())},
    }


def markdown(report: Dict) -> str:
    m, b = report['metrics'], report['baselines']
    rows = [('visible', m['visible_accuracy'], f'majority {b["visible_majority"]:.2f}'),
            ('bearing', m['bearing_accuracy'], f'chance {b["bearing_chance"]:.2f}, '
             f'majority {b["bearing_majority"]:.2f}'),
            ('near/far', m['distance_accuracy'], f'chance {b["distance_chance"]:.2f}, '
             f'majority {b["distance_majority"]:.2f}'),
            ('path clear', m['path_accuracy'], f'majority {b["path_majority"]:.2f}'),
            ('decision agreement', m['decision_agreement'],
             f'majority {b["decision_majority"]:.2f}'),
            ('... object visible', m['decision_agreement_visible'], '')]
    lat = report['latency_s']
    lines = [f'# Offline evaluation: {report.get("model", "")} on {report.get("bag", "")}', '',
             f'{report["frames"]} frames, {report["pairs"]} (frame, object) pairs, '
             f'{report["visible_pairs"]} with the object visible.', '',
             '| question | accuracy | baseline |', '|---|---|---|']
    lines += [f'| {name} | {value:.3f} | {base} |' for name, value, base in rows]
    skipped = report.get('skipped') or {}
    if skipped.get('refused') or skipped.get('no_truth') or skipped.get('bad_truth'):
        lines += ['', f'Skipped: {skipped["refused"]} frames refused'
                  + (f' (first: {skipped["first_refusal"]})' if skipped['refused'] else '')
                  + f', {skipped["no_truth"]} without ground truth, '
                  f'{skipped["bad_truth"]} unreadable ground truth messages.']
    lines += ['', f'Mean probability given to the truth: {m["mean_p_truth"]:.3f}.',
              f'Latency per frame (all questions): mean {lat["mean"] * 1e3:.0f} ms, '
              f'p95 {lat["p95"] * 1e3:.0f} ms, max {lat["max"] * 1e3:.0f} ms.',
              f'Actions (model / truth): {report["actions"]["model"]} / '
              f'{report["actions"]["truth"]}', '']
    return '\n'.join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('bag', help='rosbag2 (folder or .mcap/.db3 file) with camera frames '
                        'and sim/ground_truth')
    parser.add_argument('--model', default='', help="HF id or folder; '' = embedded model")
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--dtype', default='float32')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch CPU threads (0 = torch default), as the vlm_node has')
    parser.add_argument('--camera-topic', '--image-topic', dest='image_topic', default='',
                        help="the bag's camera topic (Image or CompressedImage); '' = its "
                        'only camera')
    parser.add_argument('--truth-topic', default=TRUTH_TOPIC)
    parser.add_argument('--distro', default='',
                        help='typestore for a bag without stored message definitions '
                        "(humble, jazzy, ...); '' = from the bag")
    parser.add_argument('--max-frames', type=int, default=0, help='0 = all')
    parser.add_argument('--out', default='', help='folder for eval.json and eval.md')
    parser.add_argument('--debug', action='store_true', default=argparse.SUPPRESS,
                        help='show the traceback of an error (also VLM_NAV_DEBUG=1)')


def run(args) -> int:
    frames = read_labelled_frames(args.bag, args.image_topic, args.truth_topic,
                                  max_frames=args.max_frames or None, distro=args.distro)
    print(f'{frames.note}: camera {frames.camera}, {len(frames)} of {frames.seen} frames '
          f'scored ({frames.refused} refused, {frames.unpaired} without ground truth)')
    if not frames:
        raise BagError(frames.why_none())
    if args.threads:
        import torch
        torch.set_num_threads(args.threads)
    backend = load_backend(args.model, device=args.device, dtype=args.dtype)
    report = dict(evaluate(frames, backend), bag=str(args.bag), model=backend.name,
                  camera=frames.camera, skipped=frames.skipped())
    text = markdown(report)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / 'eval.json').write_text(json.dumps(report, indent=2))
        (out / 'eval.md').write_text(text)
        print(f'wrote {out / "eval.json"} and {out / "eval.md"}')
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    raise SystemExit(main())
