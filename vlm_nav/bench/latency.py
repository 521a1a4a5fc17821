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
Frame-to-Twist latency through the real nodes (part of `vlm-nav bench model --nodes`).

The sim profile (sim_node at real time, vlm_node with the embedded model, the scene
describer, navigator_node searching) runs as separate processes over DDS, once per
navigator policy. navigator_node publishes, with every Twist, a NavigatorState that
carries the stamp of the camera frame its newest observation was made on; the first
state after a new frame stamp gives that frame's latency: state.stamp - frame stamp,
both on the wall clock (sim_node stamps a frame when it renders it).

`--depth` measures the navigator with the depth camera and no lidar (use_depth: the
simulator's depth image as a planar scan into the map) beside the default (the lidar
mapped), interleaved in one run.
"""

import argparse
import json
import os
import sys
import time
from typing import Dict, Iterable, List, Optional

import numpy as np

from vlm_nav.bringup.profiles import default_params_file, profile_nodes
from vlm_nav.bringup.supervisor import Stack

SEED, TARGET = 5, 'red ball'      # the demo's layout: the target is there to be found


# name -> (navigator policy, vlm_node parameter overrides)
VARIANTS = {
    # the defaults: runtime auto = ONNX Runtime int8 scoring for the embedded model
    'scored': ('scored', {}),
    # the same, but decisions wait whenever the describer's generation holds the model
    'scored, waiting for descriptions': ('scored', {'answer_during_generation': False}),
    'scored, torch float32': ('scored', {'runtime': 'torch'}),
    'scored, torch int8': ('scored', {'runtime': 'torch', 'dtype': 'int8'}),
    'scored, onnxruntime float32': ('scored', {'runtime': 'onnxruntime'}),
    'original': ('original', {}),
    # descriptions from the frame alone, one generation (the default combines four views)
    'scored, one-view descriptions': ('scored', {'describe_views': ['identity'],
                                                 'describe_min_votes': 1}),
    # the depth camera mapped instead of the lidar (sim_node publishes no scan)
    'scored, depth': ('scored', {}),
}
# Variants that change the navigator's and sim_node's parameters (node_overrides)
SENSOR_VARIANTS = ('scored, depth',)
DEPTH_VARIANTS = ('scored', 'scored, depth')
# What `vlm-nav bench model --nodes` measures: the model's variants on the default sensors.
DEFAULT_VARIANTS = tuple(v for v in VARIANTS if v not in SENSOR_VARIANTS)


def node_overrides(variant: str):
    """Return (navigator, sim_node) parameter overrides of a variant."""
    if variant != 'scored, depth':
        return {}, {}
    # the simulator pulls in pybullet: imported here, so `bench model` loads without it
    from vlm_nav.sim.layout import make_layout
    from vlm_nav.sim.world import camera_to_base
    return ({'use_scan': False, 'use_depth': True,
             'depth_camera_to_base': camera_to_base(make_layout(SEED))},
            {'publish_scan': False})


def _collect(seconds: float, variant: str, log) -> np.ndarray:
    """One variant's stack for `seconds` after warm-up: frame-to-Twist latencies (ms)."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.time import Time
    from vlm_nav_interfaces.msg import NavigatorState

    policy, vlm_overrides = VARIANTS[variant]
    navigator_overrides, sim_overrides = node_overrides(variant)
    specs = profile_nodes('sim', model='', target=TARGET, seed=SEED)
    for spec in specs:
        if spec.name == 'navigator_node':
            spec.parameters.update(policy=policy, mode='search', **navigator_overrides)
        if spec.name == 'vlm_node':
            spec.parameters.update(vlm_overrides)
        if spec.name == 'sim_node':
            spec.parameters.update(sim_overrides)
    env = {'ROS_DOMAIN_ID': str(os.getpid() % 150 + 60 + list(VARIANTS).index(variant))}
    os.environ.update(env)
    first_seen: Dict[int, float] = {}
    with Stack(specs, default_params_file(), env=env, echo=False):
        rclpy.init()
        node = rclpy.create_node('frame_to_twist_probe')

        def on_state(msg: NavigatorState) -> None:
            frame = Time.from_msg(msg.frame_stamp).nanoseconds
            if frame and frame not in first_seen:
                first_seen[frame] = (Time.from_msg(msg.stamp).nanoseconds - frame) * 1e-9

        node.create_subscription(NavigatorState, 'vlm_nav/navigator_state', on_state, 50)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            deadline = time.monotonic() + 120.0        # model load and discovery
            while not first_seen and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            first_seen.clear()                         # warm-up over: measure from here
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown()
    lat = np.array(list(first_seen.values())) * 1e3
    if len(lat):
        log(f'[bench] frame-to-Twist, {variant}: p50 {np.percentile(lat, 50):.1f} ms, '
            f'p95 {np.percentile(lat, 95):.1f} ms, {len(lat) / seconds:.1f} decisions/s')
    return lat


def frame_to_twist(seconds: float, variants: Iterable[str] = DEFAULT_VARIANTS,
                   rounds: int = 1, log=print) -> Dict:
    """
    Run each variant for `seconds`, the variants interleaved `rounds` times; pool latencies.

    The machine's other work drifts; interleaving spreads it over all of them.
    """
    variants = list(variants)
    pooled: Dict[str, list] = {v: [] for v in variants}
    round_p50: Dict[str, list] = {v: [] for v in variants}
    for round_index in range(rounds):
        for variant in variants:
            if rounds > 1:
                log(f'[bench] round {round_index + 1}/{rounds}: {variant}')
            lat = _collect(seconds, variant, log)
            pooled[variant].extend(lat.tolist())
            if len(lat):
                round_p50[variant].append(round(float(np.percentile(lat, 50)), 1))
    out = {}
    for variant in variants:
        lat = np.array(pooled[variant])
        if not len(lat):
            out[variant] = {'error': 'no decisions observed'}
            continue
        out[variant] = {'p50_ms': round(float(np.percentile(lat, 50)), 1),
                        'p95_ms': round(float(np.percentile(lat, 95)), 1),
                        'mean_ms': round(float(lat.mean()), 1), 'decisions': int(len(lat)),
                        'decisions_per_s': round(len(lat) / (seconds * rounds), 2),
                        'p50_ms_per_round': round_p50[variant], 'camera_hz': 10.0}
    s, o = out.get('scored', {}), out.get('original', {})
    if 'p50_ms' in s and 'p50_ms' in o:
        out['original_over_scored_p50'] = round(o['p50_ms'] / s['p50_ms'], 2)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    """
    Run `python -m vlm_nav.bench.latency`: the frame-to-Twist part alone.

    `vlm-nav bench model --nodes` runs it after the model benchmark.
    """
    parser = argparse.ArgumentParser(prog='python -m vlm_nav.bench.latency', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--seconds', type=float, default=40.0, help='measured, per variant')
    parser.add_argument('--variants', nargs='+', choices=list(VARIANTS), default=None,
                        help='default: all but the depth variant')
    parser.add_argument('--depth', action='store_true',
                        help="the navigator with the depth camera and no lidar ('scored, "
                        "depth') beside the default ('scored', lidar mapped), interleaved")
    parser.add_argument('--rounds', type=int, default=1,
                        help='run the variants this many times, interleaved; pooled')
    parser.add_argument('--out', default='', help='write summary.json here')
    args = parser.parse_args(argv)
    if args.variants is None:
        args.variants = list(DEPTH_VARIANTS if args.depth else DEFAULT_VARIANTS)
    elif args.depth:
        args.variants += [v for v in DEPTH_VARIANTS if v not in args.variants]
    summary = frame_to_twist(args.seconds, args.variants, args.rounds)
    s, d = summary.get('scored', {}), summary.get('scored, depth', {})
    if 'p50_ms' in s and 'p50_ms' in d:
        summary['depth_minus_lidar_p50_ms'] = round(d['p50_ms'] - s['p50_ms'], 1)
    summary['load_average'] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(summary, indent=2))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, 'summary.json'), 'w') as f:
            json.dump(summary, f, indent=2)
    return 0 if all('p50_ms' in summary[v] for v in args.variants) else 1


if __name__ == '__main__':
    sys.exit(main())
