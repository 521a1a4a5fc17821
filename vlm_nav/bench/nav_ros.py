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
`vlm-nav bench nav` over ROS: the real nodes run each episode.

The real sim_node, vlm_node (or oracle_node) and navigator_node talk over ROS topics and
services (the composed runner's arrangement), on simulated time: sim_node publishes
/clock at real_time_factor, every other node has use_sim_time. The simulator, navigator,
oracle and the benchmark's watcher are nodes of this process on one
MultiThreadedExecutor; the vlm_node is its own process. Episodes, success and SPL are
vlm_nav.sim.episodes'.
"""

import json
import math
import os
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import rclpy
from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import String

from vlm_nav.bench.oracle_node import OracleNode
from vlm_nav.bringup.profiles import default_params_file, NodeSpec
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.navigator_node import NavigatorNode
from vlm_nav.sim.episodes import Episode, habitat_columns, path_length, spl
from vlm_nav.sim.layout import make_layout
from vlm_nav.sim.world import camera_to_base
from vlm_nav.sim_node import SimNode
from vlm_nav_interfaces.msg import NavigatorState


class _Watcher:
    """What the benchmark observes of an episode (a plain rclpy node's subscriptions)."""

    def __init__(self, node):
        self.node = node
        self.lock = threading.Lock()
        self.reset()
        node.create_subscription(Odometry, 'odom', self._on_odom, 50)
        node.create_subscription(String, 'sim/ground_truth', self._on_truth, 10)
        node.create_subscription(NavigatorState, 'vlm_nav/navigator_state', self._on_state, 10)

    def reset(self):
        with self.lock:
            self.trajectory: List[Tuple[float, float, float]] = []
            self.truth: Optional[dict] = None
            self.state = None
            self.arrived_at: Optional[float] = None

    def _on_odom(self, msg):
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        with self.lock:
            self.trajectory.append((p.x, p.y, yaw))

    def _on_truth(self, msg):
        with self.lock:
            self.truth = json.loads(msg.data)

    def _on_state(self, msg):
        with self.lock:
            self.state = msg
            if msg.mode == 'search' and msg.phase == 'arrived' and self.arrived_at is None:
                self.arrived_at = msg.stamp.sec + msg.stamp.nanosec * 1e-9


class Runner:
    """
    Run episodes over ROS: one ROS context for the whole run.

    The vlm_node (model) is its own process, loaded once, as on a robot: in this process
    its forward pass (Python-heavy for a small model) would hold the GIL and starve the
    simulator and navigator. The simulator, navigator and oracle are fresh nodes in this
    process for every episode.
    """

    def __init__(self, args):
        self.args = args
        os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 90 + 110))
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        self.params_file = args.params_file or default_params_file()
        rclpy.init(args=['vlm_nav_bench', '--ros-args', '--params-file', self.params_file])
        self.clock_s = 0.0          # each episode's simulated clock starts after the last
        self.vlm = None             # the vlm_node process (a bringup Stack)
        self.vlm_stats: Dict[str, str] = {}        # its newest /diagnostics values

    def _sim_time(self) -> List:
        return [Parameter('use_sim_time', value=True)]

    def ensure_vlm(self):
        if self.vlm is None:
            logs = tempfile.mkdtemp(prefix='vlm_nav_bench_')
            self.vlm = Stack([NodeSpec('vlm_node', 'vlm_node', {
                'model': self.args.model, 'threads': self.args.torch_threads,
                'use_sim_time': True})], self.params_file, echo=False, log_dir=logs).start()
            print(f'[bench] loading the model in vlm_node (log: {logs}/vlm_node.log)…',
                  flush=True)
            log, deadline = os.path.join(logs, 'vlm_node.log'), time.monotonic() + 180.0
            while time.monotonic() < deadline:
                text = open(log).read() if os.path.exists(log) else ''
                if ' ready in ' in text:
                    break
                if 'failed' in text or self.vlm.dead():
                    raise RuntimeError(f'vlm_node did not start:\n{text[-2000:]}')
                time.sleep(0.2)
            else:
                raise RuntimeError('vlm_node: model not ready after 180 s')
        return self.vlm

    def _on_diagnostics(self, msg) -> None:
        for status in msg.status:
            if status.name == 'vlm_nav: vlm_node':
                self.vlm_stats = {kv.key: kv.value for kv in status.values}

    def _next_vlm_counts(self) -> Tuple[int, int]:
        """
        Return (requests answered or failed, cache hits) so far.

        From vlm_node's next /diagnostics (published every simulated second; up to 10 s
        wall is waited).
        """
        self.vlm_stats = {}
        deadline = time.monotonic() + 10.0
        while not self.vlm_stats and time.monotonic() < deadline:
            time.sleep(0.05)
        s = self.vlm_stats
        return (int(s.get('requests_ok', 0)) + int(s.get('requests_failed', 0)),
                int(s.get('cache_hits', 0)))

    def run(self, episode: Episode, policy: str) -> Dict:
        a = self.args
        t0 = self.clock_s + 10.0
        sim = SimNode(parameter_overrides=[
            Parameter('seed', value=episode.seed),
            Parameter('start_pose', value=[float(v) for v in episode.start]),
            Parameter('real_time_factor', value=a.real_time_factor),
            Parameter('publish_clock', value=True),
            Parameter('start_time_s', value=t0)])
        # The oracle serves its Observe under another name, so it never meets the vlm_node's.
        remap = ['--ros-args', '-r', 'vlm_nav/observe:=bench_oracle/observe']
        nodes = [sim]
        perception = None
        oracle = policy.startswith('oracle')
        if oracle:
            perception = OracleNode(parameter_overrides=self._sim_time(), cli_args=remap)
            nodes.append(perception)
        else:
            self.ensure_vlm()
        nav = NavigatorNode(
            parameter_overrides=self._sim_time() + [
                Parameter('policy', value='original' if policy == 'original' else 'scored'),
                Parameter('use_scan', value=policy.endswith('_scan')),
                Parameter('use_depth', value=policy.endswith('_depth')),
                # the layout's camera (no TF in the simulator): where the depth is seen from
                Parameter('depth_camera_to_base',
                          value=camera_to_base(make_layout(episode.seed))),
                Parameter('mode', value='search'), Parameter('target', value=episode.target)],
            cli_args=remap if oracle else None)
        nodes.append(nav)
        # A fresh watcher per episode: a node that outlives a torn-down executor can stop
        # receiving odometry in a loaded run.
        watch_node = rclpy.create_node('vlm_nav_bench')
        self.watcher = _Watcher(watch_node)
        watch_node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diagnostics, 10)
        executor = MultiThreadedExecutor(num_threads=4)
        for node in nodes + [watch_node]:
            executor.add_node(node)
        thread = threading.Thread(target=executor.spin, daemon=True)
        started = time.monotonic()
        thread.start()
        if not oracle:               # vlm_node's counters at the start
            before = self._next_vlm_counts()
        outcome = 'timeout'
        while True:
            time.sleep(0.05)
            now = sim._sim_time - t0
            if self.watcher.arrived_at is not None:
                outcome = 'arrived'
                break
            if sim._world.collisions >= a.collision_limit:
                outcome = 'collisions'
                break
            if now >= a.timeout_s:
                break
        end_s = sim._sim_time - t0
        judged = None
        if outcome == 'arrived':     # the first truth of a frame taken after the stop
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                with self.watcher.lock:
                    truth = self.watcher.truth
                if truth and truth['stamp'] > self.watcher.arrived_at:
                    judged = truth
                    break
                time.sleep(0.02)
        with self.watcher.lock:
            trajectory = list(self.watcher.trajectory)
        counts = dict(nav._counts)
        if not oracle:               # ... and at the end: this episode's calls
            after = self._next_vlm_counts()
        collisions = sim._world.collisions
        for node in nodes + [watch_node]:
            executor.remove_node(node)
        executor.shutdown(timeout_sec=5.0)
        thread.join(5.0)
        watch_node.destroy_node()
        wall = time.monotonic() - started
        if oracle:
            vlm_calls, inferences = perception.requests, 0
        else:
            vlm_calls = after[0] - before[0]
            inferences = vlm_calls - (after[1] - before[1])
        for node in nodes:
            node.destroy_node()
        self.clock_s = t0 + end_s
        distance, in_view = math.nan, False
        if judged is not None:
            for obj in judged['objects']:
                if obj['label'] == episode.target:
                    distance, in_view = obj['distance_m'], bool(obj['visible'])
        success = (outcome == 'arrived' and distance <= a.success_distance_m and in_view)
        actual = path_length(trajectory)
        return {
            'episode': episode.index, 'seed': episode.seed, 'target': episode.target,
            'policy': policy, 'outcome': outcome, 'success': int(success),
            'spl': round(spl(success, episode.shortest_m, actual), 4),
            **habitat_columns(episode, outcome, distance, in_view, actual),
            'shortest_m': round(episode.shortest_m, 3), 'path_m': round(actual, 3),
            'final_distance_m': round(distance, 3) if math.isfinite(distance) else '',
            'target_in_view': int(in_view), 'collisions': collisions,
            'time_s': round(end_s, 2), 'decisions': counts['observations'],
            'vlm_calls': vlm_calls, 'inferences': inferences,
            'observe_failures': counts['observe_failures'],
            'stale_stops': counts['stale_stops'], 'wall_s': round(wall, 1),
            'trajectory': [(round(x, 3), round(y, 3)) for x, y, _ in trajectory[::3]],
        }

    def close(self):
        if self.vlm is not None:
            self.vlm.stop()
        rclpy.try_shutdown()
