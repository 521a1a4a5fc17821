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
The simulator demo: the whole stack over DDS, exploring and then finding a target.

Starts sim_node, vlm_node, scene_describer_node and navigator_node as processes (the
`sim` bringup profile), then drives the scenario from a small supervisor node: explore
for a while, SetTarget(search), print every decision, stop when the navigator says it
arrived (or on timeout), judge the stop against the simulator's ground truth, and
write a top-down picture of the trajectory.
"""

import argparse
import json
import math
import os
import time
from typing import List, Optional, Tuple

from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from std_msgs.msg import String, UInt32

from vlm_nav.bringup.profiles import default_params_file, profile_nodes
from vlm_nav.bringup.supervisor import Stack
from vlm_nav_interfaces.msg import NavigatorState
from vlm_nav_interfaces.srv import SetTarget

DEFAULT_SEED = 5
DEFAULT_TARGET = 'red ball'


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--target', default=DEFAULT_TARGET, help='what to find')
    parser.add_argument('--seed', type=int, default=DEFAULT_SEED, help='simulator layout')
    parser.add_argument('--start', default='', help='start pose x,y,yaw (default: from seed)')
    parser.add_argument('--model', default='', help="HF id or folder; '' = embedded model")
    parser.add_argument('--explore-s', type=float, default=6.0, help='explore first (s)')
    parser.add_argument('--timeout-s', type=float, default=150.0, help='give up after (s)')
    parser.add_argument('--success-distance', type=float, default=1.3,
                        help='a stop this close to the target (m, centre to centre) counts')
    parser.add_argument('--out', default='out/demo', help='folder for the picture and logs')
    parser.add_argument('--params-file', default=None)
    parser.add_argument('--quiet-nodes', action='store_true', help="don't echo node output")


class Supervisor(Node):
    """Watches the stack; never feeds the navigator anything but SetTarget."""

    def __init__(self):
        super().__init__('vlm_nav_demo')
        self.state: Optional[NavigatorState] = None
        self.twist = Twist()
        self.trajectory: List[Tuple[float, float, float]] = []
        self.truth: Optional[dict] = None
        self.collisions = 0
        self.scene = ''
        self.create_subscription(NavigatorState, 'vlm_nav/navigator_state', self._on_state, 10)
        self.create_subscription(Odometry, 'odom', self._on_odom, 10)
        self.create_subscription(String, 'sim/ground_truth', self._on_truth, 10)
        self.create_subscription(UInt32, 'sim/collisions', self._on_collisions, 10)
        self.create_subscription(String, 'scene_description', self._on_scene, 10)
        self.set_target = self.create_client(SetTarget, 'vlm_nav/set_target')

    def _on_state(self, msg):
        self.state = msg

    def _on_odom(self, msg):
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        yaw = math.atan2(2 * (q.w * q.z + q.x * q.y), 1 - 2 * (q.y * q.y + q.z * q.z))
        self.trajectory.append((p.x, p.y, yaw))

    def _on_truth(self, msg):
        self.truth = json.loads(msg.data)

    def _on_collisions(self, msg):
        self.collisions = msg.data

    def _on_scene(self, msg):
        self.scene = msg.data


def _spin_until(executor, done, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        executor.spin_once(timeout_sec=0.05)
        if done():
            return True
    return False


def _call(executor, node: Supervisor, target: str, mode: str) -> SetTarget.Response:
    future = node.set_target.call_async(SetTarget.Request(target=target, mode=mode))
    _spin_until(executor, future.done, 10.0)
    if not future.done():
        raise RuntimeError('SetTarget did not answer within 10 s')
    return future.result()


def _target_truth(truth: dict, target: str) -> Optional[dict]:
    for obj in truth.get('objects', []):
        if obj['label'] == target:
            return obj
    return None


def run(args) -> int:
    # Deferred: vlm_nav.sim loads pybullet (heavy); `vlm-nav demo --help` runs without it.
    from vlm_nav.sim import make_layout, save_top_down
    layout = make_layout(args.seed)
    if args.target not in layout.labels:
        print(f'[demo] layout {args.seed} has no {args.target!r}; it has: '
              f'{", ".join(layout.labels)}. Pick one with --target or another --seed.')
        return 2
    os.makedirs(args.out, exist_ok=True)
    params_file = args.params_file or default_params_file()
    specs = profile_nodes('sim', model=args.model, seed=args.seed)
    if args.start:
        specs[0].parameters['start_pose'] = [float(v) for v in args.start.split(',')]
    # A private DDS domain unless the user chose one, so two demos don't drive each other.
    env = {'ROS_DOMAIN_ID': os.environ.get('ROS_DOMAIN_ID', str(os.getpid() % 200 + 20))}
    os.environ.update(env)
    print(f'[demo] layout {args.seed}: {", ".join(layout.labels)}; target {args.target!r}')
    outcome, detail = 'timeout', ''
    with Stack(specs, params_file, env=env, echo=not args.quiet_nodes, log_dir=args.out) as st:
        rclpy.init()
        node = Supervisor()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            print('[demo] waiting for the stack (model load)…')
            if not node.set_target.wait_for_service(timeout_sec=60.0):
                print('[demo] navigator did not come up')
                return 1
            _spin_until(executor, lambda: node.truth is not None, 30.0)
            print(f'[demo] explore for {args.explore_s:.0f} s: '
                  f'{_call(executor, node, "", "explore").message}')
            started = time.monotonic()
            searching = False
            last_print, last_phase, last_scene = 0.0, '', ''
            while time.monotonic() - started < args.timeout_s:
                executor.spin_once(timeout_sec=0.05)
                if st.dead():
                    outcome, detail = 'crash', f'node(s) exited: {", ".join(st.dead())}'
                    break
                if not searching and time.monotonic() - started >= args.explore_s:
                    print(f'[demo] search: {_call(executor, node, args.target, "search").message}')
                    searching = True
                if node.scene != last_scene:
                    print(f'[demo t={time.monotonic() - started:5.1f}s] scene_description: '
                          f'{node.scene!r}')
                    last_scene = node.scene
                s = node.state
                if s is None:
                    continue
                line = f'{s.mode}/{s.phase}: v={s.linear_x:+.2f} m/s w={s.angular_z:+.2f} ' \
                       f'rad/s | {s.reason}'
                now = time.monotonic()
                # every phase change, and the running decision once a second
                if s.phase != last_phase or now - last_print > 1.0:
                    print(f'[demo t={now - started:5.1f}s] {line}')
                    last_print, last_phase = now, s.phase
                if searching and s.mode == 'search' and s.phase == 'arrived':
                    outcome = 'arrived'
                    break
            _spin_until(executor, lambda: False, 0.5)   # last odometry and truth
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    truth = _target_truth(node.truth or {}, args.target)
    success = False
    if outcome == 'arrived' and truth is not None:
        success = truth['distance_m'] <= args.success_distance and truth['visible']
        detail = (f'{args.target} {truth["distance_m"]:.2f} m away, '
                  f'{"in view" if truth["visible"] else "not in view"}')
    picture = os.path.join(args.out, 'trajectory.png')
    save_top_down(picture, layout, [(x, y) for x, y, _ in node.trajectory],
                  target=args.target,
                  title=f'seed {args.seed}: {args.target} — '
                        f'{"SUCCESS" if success else outcome.upper()}')
    print(f'[demo] last description: {node.scene!r}')
    print(f'[demo] outcome: {"SUCCESS" if success else "FAILURE"} ({outcome}; {detail}); '
          f'collisions {node.collisions}; path {len(node.trajectory)} odometry poses')
    print(f'[demo] top-down picture: {picture}')
    return 0 if success else 1
