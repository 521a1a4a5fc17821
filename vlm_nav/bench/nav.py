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
`vlm-nav bench nav`: closed-loop object search on held-out simulator layouts.

Every policy runs the same episodes (vlm_nav.sim.episodes: layouts, targets, starts,
success, SPL) with the same model, over ROS (vlm_nav.bench.nav_ros: the real sim_node,
vlm_node or oracle_node and navigator_node on simulated time) or, with --no-ros, through
simulate_episode in this process (the model too; results independent of the machine's
load). This module runs them, writes the rows, the summary and the plots.

Policies: original (free-text Ask + substring parsing, nav/free_text.py), scored (the
package's navigator on Observe probabilities), oracle (the scored navigator on
ground-truth perception, oracle_node: the upper bound); scored_scan and oracle_scan: the
same with the simulator's planar lidar (scan) mapped by the navigator (use_scan);
scored_depth and oracle_depth: the same with the camera's depth image instead (use_depth:
a virtual planar scan over the camera's 60 deg view, no lidar); the others run with
neither (the camera alone). Every policy is also scored at Habitat ObjectNav's success
distance, 1.0 m (success_1m, spl_1m), beside the benchmark's 1.3 m.
"""

import argparse
import csv
from dataclasses import asdict
import json
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

from vlm_nav.bringup.profiles import node_parameters
from vlm_nav.models import load_backend
from vlm_nav.nav.free_text import FreeTextPolicy
from vlm_nav.sim import make_layout, save_top_down
from vlm_nav.sim.episodes import (Episode, FIRST_SEED, free_text_answerer, habitat_columns,
                                  make_episodes, model_observer, oracle_observer,
                                  SHORTEST_PATH, simulate_episode, spl)

POLICIES = ('original', 'scored', 'oracle', 'scored_scan', 'oracle_scan', 'scored_depth',
            'oracle_depth')
DEFAULT_POLICIES = ('original', 'scored', 'oracle', 'scored_scan', 'oracle_scan')
DEFAULT_OUT = os.path.join('bench', 'results', 'nav')


# ---- the same episodes without ROS ----
class NoRosRunner:
    """The same episodes through simulate_episode: the model runs in this process."""

    def __init__(self, args):
        self.args = args
        self.backend = None
        self.navigator = node_parameters('navigator_node', args.params_file or '')

    def run(self, episode: Episode, policy: str) -> Dict:
        a = self.args
        if not policy.startswith('oracle') and self.backend is None:
            import torch
            torch.set_num_threads(a.torch_threads)
            self.backend = load_backend(a.model)
        started = time.monotonic()
        kwargs = {'timeout_s': a.timeout_s, 'collision_limit': a.collision_limit,
                  'success_distance_m': a.success_distance_m, 'navigator': self.navigator,
                  'use_scan': policy.endswith('_scan'),
                  'use_depth': policy.endswith('_depth')}
        if policy.startswith('oracle'):
            row = simulate_episode(episode, oracle_observer, latency_s=0.02, **kwargs)
            row['vlm_calls'], row['inferences'] = row['vlm_calls'], 0
        elif policy.startswith('scored'):
            row = simulate_episode(episode, model_observer(self.backend),
                                   latency_s=a.latency_s, **kwargs)
        else:
            row = simulate_episode(episode, free_text_answerer(self.backend),
                                   latency_s=a.latency_s, policy=FreeTextPolicy(), **kwargs)
        row['policy'], row['wall_s'] = policy, round(time.monotonic() - started, 1)
        row['trajectory'] = [(x, y) for x, y, _ in row['trajectory']]
        return row

    def close(self):
        pass


# ---- results ----
CSV_FIELDS = ['episode', 'seed', 'target', 'policy', 'outcome', 'success', 'spl', 'shortest_m',
              'path_m', 'final_distance_m', 'target_in_view', 'collisions', 'time_s',
              'decisions', 'vlm_calls', 'inferences', 'observe_failures', 'stale_stops',
              'wall_s', 'success_1m', 'spl_1m', 'shortest_1m']


def _mean(values) -> Optional[float]:
    values = [float(v) for v in values]
    return round(sum(values) / len(values), 4) if values else None


def summarize(rows: List[Dict]) -> Dict[str, Dict]:
    summary = {}
    for policy in POLICIES:
        mine = [r for r in rows if r['policy'] == policy]
        if not mine:
            continue
        found = [r for r in mine if int(r['success'])]
        n = len(mine)
        summary[policy] = {
            'episodes': n,
            'success_rate': _mean([r['success'] for r in mine]),
            'spl': _mean([r['spl'] for r in mine]),
            # Habitat ObjectNav's 1.0 m (rows recorded before these columns have none)
            'success_rate_1m': _mean([r['success_1m'] for r in mine
                                      if r.get('success_1m', '') != '']),
            'spl_1m': _mean([r['spl_1m'] for r in mine if r.get('spl_1m', '') != '']),
            'collisions_per_episode': _mean([r['collisions'] for r in mine]),
            'episodes_with_collision': sum(1 for r in mine if int(r['collisions']) > 0),
            'time_to_find_s': _mean([r['time_s'] for r in found]),
            'decisions_to_find': _mean([r['decisions'] for r in found]),
            'vlm_calls_per_episode': _mean([r['vlm_calls'] for r in mine]),
            'inferences_per_episode': _mean([r['inferences'] for r in mine]),
            'outcomes': {o: sum(1 for r in mine if r['outcome'] == o)
                         for o in sorted({r['outcome'] for r in mine})},
            'wrong_stops': sum(1 for r in mine
                               if r['outcome'] == 'arrived' and not int(r['success'])),
        }
    return summary


def write_plots(out: str, summary: Dict[str, Dict]) -> None:
    import matplotlib
    matplotlib.use('Agg')
    from matplotlib.figure import Figure
    policies = [p for p in POLICIES if p in summary]
    metrics = [('success_rate', 'success rate (1.3 m)'), ('spl', 'SPL (1.3 m)'),
               ('success_rate_1m', 'success rate (1.0 m)'), ('spl_1m', 'SPL (1.0 m)'),
               ('collisions_per_episode', 'collisions / episode'),
               ('time_to_find_s', 'time to find (sim s, successes)'),
               ('vlm_calls_per_episode', 'VLM calls / episode')]
    fig = Figure(figsize=(3.0 * len(metrics), 3.8))
    colors = {'original': 'tab:gray', 'scored': 'tab:blue', 'oracle': 'tab:green',
              'scored_scan': 'tab:purple', 'oracle_scan': 'tab:olive',
              'scored_depth': 'tab:red', 'oracle_depth': 'tab:orange'}
    for i, (key, title) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        values = [summary[p][key] or 0.0 for p in policies]
        ax.bar(policies, values, color=[colors[p] for p in policies])
        for x, v in enumerate(values):
            ax.annotate(f'{v:.2f}', (x, v), ha='center', va='bottom', fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis='x', labelrotation=30, labelsize=8)
        if key in ('success_rate', 'spl', 'success_rate_1m', 'spl_1m'):
            ax.set_ylim(0, 1.05)
    n = max(summary[p]['episodes'] for p in policies)
    fig.suptitle(f'closed-loop search, {n} held-out episodes per policy', fontsize=10)
    fig.tight_layout()
    fig.savefig(os.path.join(out, 'summary.png'), dpi=110)


def write_results(out: str, rows: List[Dict], meta: Dict) -> Dict:
    summary = summarize(rows)
    with open(os.path.join(out, 'summary.json'), 'w') as f:
        json.dump(dict(meta, summary=summary), f, indent=2)
    return summary


def save_trajectory(out: str, row: Dict) -> None:
    folder = os.path.join(out, 'trajectories')
    os.makedirs(folder, exist_ok=True)
    verdict = 'SUCCESS' if row['success'] else row['outcome'].upper()
    save_top_down(os.path.join(folder, f"ep{row['episode']:03d}_{row['policy']}.png"),
                  make_layout(row['seed']), row['trajectory'], target=row['target'],
                  title=f"{row['policy']}: seed {row['seed']}, {row['target']} — {verdict} "
                        f"(SPL {row['spl']:.2f}, {row['collisions']} coll.)")


# ---- command line ----
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--episodes', type=int, default=50)
    parser.add_argument('--first-seed', type=int, default=FIRST_SEED,
                        help='layout seed of episode 0 (held out: never used in training)')
    parser.add_argument('--policies', nargs='+', choices=POLICIES,
                        default=list(DEFAULT_POLICIES),
                        help='the _scan ones add the simulated lidar (use_scan), the _depth '
                             "ones the camera's depth image (use_depth); default: "
                             + ' '.join(DEFAULT_POLICIES))
    parser.add_argument('--model', default='', help="HF id or folder; '' = embedded model")
    parser.add_argument('--real-time-factor', type=float, default=2.0,
                        help='simulated seconds per wall second')
    parser.add_argument('--timeout-s', type=float, default=90.0, help='per episode, sim s')
    parser.add_argument('--collision-limit', type=int, default=5)
    parser.add_argument('--success-distance-m', type=float, default=1.3,
                        help='robot centre to target centre at the stop')
    parser.add_argument('--min-start-m', type=float, default=2.0,
                        help='start at least this far from the target (centre to centre)')
    parser.add_argument('--torch-threads', type=int, default=1)
    parser.add_argument('--trajectories', type=int, default=4,
                        help='top-down pictures of the first N episodes per policy')
    parser.add_argument('--out', default=DEFAULT_OUT)
    parser.add_argument('--params-file', default=None)
    parser.add_argument('--no-ros', action='store_true',
                        help='policy and model in this process on simulated time, no ROS '
                             '(simulate_episode): results independent of the machine load')
    parser.add_argument('--latency-s', type=float, default=0.2,
                        help='--no-ros: simulated seconds from a frame to its answer '
                             '(the ROS runs: ~0.09 s of inference at real_time_factor 2)')
    parser.add_argument('--report-only', action='store_true',
                        help="rewrite summary.json's summary and the plots from episodes.csv "
                             '(e.g. of a run still in progress); runs nothing')
    parser.add_argument('--rescore', action='store_true',
                        help="with --report-only: recompute every row's shortest path and SPL "
                             'by the current definition (same episodes, recorded outcome and '
                             'path kept) and rewrite episodes.csv')


def rescore(rows: List[Dict], meta: Dict) -> Tuple[List[Dict], List[Episode]]:
    """
    Recompute shortest_m and spl of rows by the current shortest-path definition.

    For results recorded under an earlier one: each row's episode is rebuilt from its
    seed. Returns the rows and the rebuilt episodes.
    """
    distance = float(meta.get('success_distance_m', 1.3))
    first = min(int(r['seed']) - int(r['episode']) for r in rows)
    count = max(int(r['episode']) for r in rows) + 1
    episodes = make_episodes(count, first, distance, float(meta.get('min_start_m', 2.0)))
    out = []
    for row in rows:
        episode = episodes[int(row['episode'])]
        if episode.seed != int(row['seed']) or episode.target != row['target']:
            raise ValueError(f"row {row['episode']} ({row['seed']}, {row['target']}) is not "
                             f'episode {episode}: rows from another episode list')
        success = bool(int(row['success']))              # as summarize reads it
        actual = float(row['path_m'])
        distance = float(row['final_distance_m']) if row['final_distance_m'] != '' else \
            float('nan')
        out.append(dict(row, shortest_m=round(episode.shortest_m, 3),
                        spl=round(spl(success, episode.shortest_m, actual), 4),
                        **habitat_columns(episode, row['outcome'], distance,
                                          bool(int(row['target_in_view'])), actual)))
    return out, episodes


def report(out: str, rescore_rows: bool = False) -> Dict[str, Dict]:
    """Write the summary and plots of an episodes.csv, partial or complete."""
    with open(os.path.join(out, 'episodes.csv')) as f:
        reader = csv.DictReader(f)
        fields, rows = reader.fieldnames, list(reader)
    path = os.path.join(out, 'summary.json')
    meta = {}
    if os.path.isfile(path):
        with open(path) as f:
            meta = json.load(f)
    if rescore_rows:
        rows, episodes = rescore(rows, meta)
        with open(os.path.join(out, 'episodes.csv'), 'w', newline='') as f:
            writer = csv.DictWriter(f, fields + [k for k in CSV_FIELDS if k not in fields])
            writer.writeheader()
            writer.writerows(rows)
        meta['shortest_path'] = SHORTEST_PATH
        for entry in meta.get('episode_list', []):
            if entry['index'] < len(episodes):
                entry['shortest_m'] = episodes[entry['index']].shortest_m
        meta['rescored'] = 'shortest_m and spl recomputed from the recorded rows by ' \
            '`--report-only --rescore`'
    summary = write_results(out, rows, {k: v for k, v in meta.items() if k != 'summary'})
    write_plots(out, summary)
    return summary


def run(args) -> int:
    os.makedirs(args.out, exist_ok=True)
    if args.report_only:
        print(json.dumps(report(args.out, args.rescore), indent=1))
        return 0
    command = 'vlm-nav bench nav ' + ' '.join(sys.argv[3:] if sys.argv[1:3] == ['bench', 'nav']
                                              else sys.argv[1:])
    print(f'[bench] {args.episodes} episodes x {", ".join(args.policies)}; '
          f'real_time_factor {args.real_time_factor}; results in {args.out}', flush=True)
    episodes = make_episodes(args.episodes, args.first_seed, args.success_distance_m,
                             args.min_start_m)
    meta = {'command': command, 'episodes': args.episodes, 'first_seed': args.first_seed,
            'policies': args.policies, 'model': args.model or 'embedded',
            'real_time_factor': args.real_time_factor, 'timeout_s': args.timeout_s,
            'collision_limit': args.collision_limit,
            'success_distance_m': args.success_distance_m, 'min_start_m': args.min_start_m,
            'shortest_path': SHORTEST_PATH,
            'episode_list': [asdict(e) for e in episodes]}
    csv_path = os.path.join(args.out, 'episodes.csv')
    traj_path = os.path.join(args.out, 'trajectories.jsonl')
    rows: List[Dict] = []
    if args.no_ros:
        meta['mode'] = (f'no ROS: simulate_episode, answers {args.latency_s} simulated s after '
                        'their frame (oracle 0.02 s), one request in flight')
    if args.no_ros:
        runner = NoRosRunner(args)
    else:
        from vlm_nav.bench.nav_ros import Runner    # rclpy: only where the run is over ROS
        runner = Runner(args)
    try:
        with open(csv_path, 'w', newline='') as f_csv, open(traj_path, 'w') as f_traj:
            writer = csv.DictWriter(f_csv, CSV_FIELDS, extrasaction='ignore')
            writer.writeheader()
            for episode in episodes:
                for policy in args.policies:
                    row = runner.run(episode, policy)
                    rows.append(row)
                    writer.writerow(row)
                    f_csv.flush()
                    f_traj.write(json.dumps({k: row[k] for k in
                                             ('episode', 'policy', 'trajectory')}) + '\n')
                    f_traj.flush()
                    if episode.index < args.trajectories:
                        save_trajectory(args.out, row)
                    summary = write_results(args.out, rows, meta)
                    s = summary[policy]
                    print(f'[bench] ep {episode.index + 1}/{len(episodes)} seed {episode.seed} '
                          f"{policy:8s} {episode.target!r:14s} {row['outcome']:10s} "
                          f"{'OK ' if row['success'] else 'no '} spl {row['spl']:.2f} "
                          f"t {row['time_s']:5.1f}s dec {row['decisions']:3d} "
                          f"coll {row['collisions']} wall {row['wall_s']:.0f}s | "
                          f"{policy} so far: success {s['success_rate']:.2f} "
                          f"spl {s['spl']:.2f}", flush=True)
    finally:
        runner.close()
    summary = write_results(args.out, rows, meta)
    write_plots(args.out, summary)
    print('[bench] ' + json.dumps(summary, indent=1), flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog='vlm-nav bench nav', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
