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
`vlm-nav bench nav`: rescoring, light imports and the oracle as plain Python.

And a small closed-loop regression run through the real nodes with a floor on success.
"""

import csv
import json
import os
import subprocess
import sys

import pytest

from vlm_nav.bench.nav import CSV_FIELDS, report
from vlm_nav.bench.oracle_node import oracle_observation
from vlm_nav.sim.episodes import make_episodes


def test_report_rescore_recomputes_spl_from_the_recorded_paths(tmp_path):
    episodes = make_episodes(2)
    rows = [{'episode': e.index, 'seed': e.seed, 'target': e.target, 'policy': 'oracle',
             'outcome': 'arrived', 'success': int(e.index == 0), 'spl': 0.1,
             'shortest_m': 0.5, 'path_m': 2.0 * e.shortest_m, 'final_distance_m': 1.0,
             'target_in_view': 1, 'collisions': 0, 'time_s': 30.0, 'decisions': 100,
             'vlm_calls': 100, 'inferences': 0, 'observe_failures': 0, 'stale_stops': 0,
             'wall_s': 1.0} for e in episodes]
    with open(tmp_path / 'episodes.csv', 'w', newline='') as f:
        writer = csv.DictWriter(f, CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    summary = report(str(tmp_path), rescore_rows=True)
    assert summary['oracle']['spl'] == pytest.approx(0.25, abs=1e-3)    # (0.5 + 0) / 2
    with open(tmp_path / 'episodes.csv') as f:
        rescored = list(csv.DictReader(f))
    assert [float(r['shortest_m']) for r in rescored] == \
        [pytest.approx(e.shortest_m, abs=1e-3) for e in episodes]
    assert [r['outcome'] for r in rescored] == ['arrived', 'arrived']
    assert 'viewpoint' in json.loads((tmp_path / 'summary.json').read_text())['shortest_path']
    (tmp_path / 'summary.json').write_text(json.dumps(
        {'episode_list': [{'index': 0, 'shortest_m': 0.5}]}))
    report(str(tmp_path), rescore_rows=True)
    listed = json.loads((tmp_path / 'summary.json').read_text())['episode_list']
    assert listed[0]['shortest_m'] == pytest.approx(episodes[0].shortest_m)


def _loaded(modules, env=None):
    """Of pybullet, torch and rclpy, those that importing ``modules`` loads (a subprocess)."""
    probe = (f"import sys; import {', '.join(modules)}; "
             "print(sorted(m for m in ('pybullet', 'torch', 'rclpy') if m in sys.modules))")
    result = subprocess.run([sys.executable, '-c', probe], capture_output=True, text=True,
                            env=env, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def test_the_bench_commands_load_light(tmp_path):
    """
    `vlm-nav bench model` and `bench served` load without pybullet, torch or rclpy.

    The GPU image has no pybullet; the model loads torch when it runs. `bench nav` needs
    the simulator, and also loads neither torch nor rclpy (ROS: only a ROS run).
    """
    (tmp_path / 'pybullet.py').write_text('raise ImportError("no pybullet here")\n')
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(tmp_path)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]))
    assert _loaded(['vlm_nav.bench.model', 'vlm_nav.bench.served'], env) == '[]'
    assert _loaded(['vlm_nav.bench.nav']) == "['pybullet']"


def test_oracle_answers_from_ground_truth():
    truth = {'stamp': 12.25, 'path_clear': False, 'objects': [
        {'label': 'red ball', 'visible': True, 'image_bearing': 'left', 'distance': 'near',
         'distance_m': 0.9},
        {'label': 'blue box', 'visible': False, 'image_bearing': 'center', 'distance': 'far',
         'distance_m': 3.0}]}
    seen = oracle_observation(truth, 'red ball')
    assert seen.visible_prob == 1.0 and list(seen.bearing_probs) == [1.0, 0.0, 0.0]
    assert list(seen.distance_probs) == [1.0, 0.0] and seen.path_clear_prob == 0.0
    assert seen.header.stamp.sec == 12 and seen.header.stamp.nanosec == 250_000_000
    assert oracle_observation(truth, 'blue box').visible_prob == 0.0
    assert oracle_observation(truth, 'green cone').visible_prob == 0.0


# CI regression episodes: layouts 3 100 004..6 (outside training, validation, the held-out
# evaluation and the benchmark's 3 000 000..): yellow ball, plant, yellow box, 1.1-3.5 m
# shortest paths. In the no-ROS runner the scored navigator with the embedded model found
# all three (15, 9 and 23 simulated s), as it did 10 of 10 of 3 100 000..9. Over ROS on the
# shared 2-core machine (load 3-5) they were found 8/8, 6/9 and 4/5 times (7 runs).
CI_FIRST_SEED = 3_100_004


@pytest.mark.ros
@pytest.mark.slow
def test_closed_loop_regression_floor(tmp_path, ros_domain):
    """
    Three episodes of the scored navigator with the embedded model over ROS, above a floor.

    On sim time at real time (a loaded machine stretches the model's latency less than at
    2x), with the camera alone (scored) and with the simulator's lidar mapped
    (scored_scan). Floor, for each: at least 1 of 3 found (expected ~2.7 and 3; the
    margin is for the shared CI machine, where a starved ROS loop loses an episode now
    and then), none ended on the collision limit, no stop at the wrong place. It fails
    when the loop breaks: a navigator that never arrives, or drives into things, or a
    scan that never arrives.
    """
    out = tmp_path / 'nav'
    result = subprocess.run(
        [sys.executable, '-m', 'vlm_nav.cli.main', 'bench', 'nav', '--episodes', '3',
         '--first-seed', str(CI_FIRST_SEED), '--policies', 'scored', 'scored_scan',
         '--real-time-factor', '1', '--timeout-s', '60', '--trajectories', '1',
         '--out', str(out)],
        capture_output=True, text=True, timeout=900, env=dict(os.environ))
    episodes = [line for line in result.stdout.splitlines() if line.startswith('[bench] ep')]
    print('\n'.join(episodes))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for policy in ('scored', 'scored_scan'):
        summary = json.loads((out / 'summary.json').read_text())['summary'][policy]
        assert summary['episodes'] == 3, episodes
        assert summary['success_rate'] >= 1 / 3 - 1e-6, episodes
        assert summary['outcomes'].get('collisions', 0) == 0, episodes
        assert summary['wrong_stops'] == 0, episodes      # never 'arrived' at the wrong place
        assert (out / 'trajectories' / f'ep000_{policy}.png').stat().st_size > 10_000
