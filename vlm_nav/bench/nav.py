"""`vlm-nav bench nav`: closed-loop object search on held-out simulator layouts.

Every policy runs the same episodes with the same model: the real sim_node, vlm_node (or
oracle_node) and navigator_node in this process on one MultiThreadedExecutor, talking
over ROS topics and services (the composed runner's arrangement), on simulated time:
sim_node publishes /clock at real_time_factor, every other node has use_sim_time.

Episode i: layout seed first_seed + i (3 000 000.. by default; training used 0..5999,
validation 1 000 000.., held-out evaluation 2 000 000..), a target drawn from the
layout's objects, a random collision-free start at least min_start_m from the target
and with a path to it. It ends when the navigator says 'arrived', at the time limit, or
at the collision limit. Success: arrived, with the robot's centre within
success_distance_m of the target's centre and the target in view (ground truth of the
first camera frame after the stop).

Policies: original (free-text Ask + substring parsing, nav/original.py), scored (the
package's navigator on Observe probabilities), oracle (the scored navigator on
ground-truth perception, oracle_node: the upper bound); scored_scan and oracle_scan: the
same with the simulator's planar lidar (scan) mapped by the navigator (use_scan), the
others run with use_scan false (the camera alone).

SPL (Anderson et al. 2018, as in Habitat ObjectNav): success x shortest / max(actual,
shortest). shortest = 8-connected A* on a 0.05 m grid of the layout, cells where the
robot disc (radius 0.2 m) touches no wall or object are free, from the start to the
nearest free cell within success_distance_m of the target's centre with no wall between
it and the target (a viewpoint, as Habitat ObjectNav measures to the object's nearest
viewpoint: success needs the target in view, so a cell just behind a wall is no end).
actual = length of the odometry path.
"""

import argparse
import csv
import heapq
import json
import math
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

POLICIES = ('original', 'scored', 'oracle', 'scored_scan', 'oracle_scan')
DEFAULT_OUT = os.path.join('bench', 'results', 'nav')
FIRST_SEED = 3_000_000
GRID_M = 0.05


@dataclass
class Episode:
    index: int
    seed: int
    target: str
    start: Tuple[float, float, float]
    target_xy: Tuple[float, float]
    shortest_m: float


# ---- episodes and shortest paths (no ROS) ----
def free_grid(world, resolution: float = GRID_M):
    """Boolean occupancy grid (True = the robot disc fits) and its cell centres."""
    lay = world.layout
    xs = np.arange(-lay.width / 2 + resolution / 2, lay.width / 2, resolution)
    ys = np.arange(-lay.depth / 2 + resolution / 2, lay.depth / 2, resolution)
    gx, gy = np.meshgrid(xs, ys, indexing='ij')
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    free = ~world._hits(pts, world.robot_radius)
    return free.reshape(gx.shape), xs, ys


def shortest_path_m(world, start_xy: Tuple[float, float], goal_xy: Tuple[float, float],
                    goal_radius: float, resolution: float = GRID_M,
                    need_view: bool = True) -> float:
    """A* length from start to the nearest free cell within goal_radius of goal with no
    wall between it and goal (a viewpoint; any cell with need_view=False); inf if none."""
    free, xs, ys = free_grid(world, resolution)
    nx, ny = free.shape

    def cell(x, y):
        return (min(nx - 1, max(0, int(round((x - xs[0]) / resolution)))),
                min(ny - 1, max(0, int(round((y - ys[0]) / resolution)))))

    start = cell(*start_xy)
    free[start] = True    # the start pose is free by construction; grid rounding aside
    gx, gy = goal_xy

    def h(c):
        return max(0.0, math.hypot(xs[c[0]] - gx, ys[c[1]] - gy) - goal_radius)

    steps = [(dx, dy, resolution * math.hypot(dx, dy))
             for dx in (-1, 0, 1) for dy in (-1, 0, 1) if dx or dy]
    best = {start: 0.0}
    heap = [(h(start), 0.0, start)]
    while heap:
        _, g, c = heapq.heappop(heap)
        if g > best.get(c, math.inf):
            continue
        if math.hypot(xs[c[0]] - gx, ys[c[1]] - gy) <= goal_radius and not (
                need_view and world.wall_between((xs[c[0]], ys[c[1]]), goal_xy)):
            return g
        for dx, dy, cost in steps:
            n = (c[0] + dx, c[1] + dy)
            if not (0 <= n[0] < nx and 0 <= n[1] < ny) or not free[n]:
                continue
            if dx and dy and not (free[c[0] + dx, c[1]] and free[c[0], c[1] + dy]):
                continue     # no corner cutting
            ng = g + cost
            if ng < best.get(n, math.inf):
                best[n] = ng
                heapq.heappush(heap, (ng + h(n), ng, n))
    return math.inf


def make_episodes(count: int, first_seed: int = FIRST_SEED, success_distance_m: float = 1.3,
                  min_start_m: float = 2.0) -> List[Episode]:
    """The benchmark's episodes: same arguments, same episodes on any machine."""
    from vlm_nav.sim import make_layout, World
    episodes = []
    for i in range(count):
        seed = first_seed + i
        layout = make_layout(seed)
        rng = np.random.default_rng(seed)
        target = str(rng.choice(layout.labels))
        obj = layout.object(target)
        with World(layout) as world:
            for _ in range(200):
                x, y, yaw = world.random_free_pose(rng, margin=0.05, clear_ahead_m=0.5)
                if math.hypot(x - obj.x, y - obj.y) < min_start_m:
                    continue
                shortest = shortest_path_m(world, (x, y), (obj.x, obj.y), success_distance_m)
                if math.isfinite(shortest):
                    break
            else:
                raise RuntimeError(f'layout {seed}: no start with a path to the {target}')
        episodes.append(Episode(i, seed, target, (x, y, yaw), (obj.x, obj.y), shortest))
    return episodes


def path_length(trajectory) -> float:
    return float(sum(math.hypot(b[0] - a[0], b[1] - a[1])
                     for a, b in zip(trajectory, trajectory[1:])))


def spl(success: bool, shortest: float, actual: float) -> float:
    return float(success) * shortest / max(actual, shortest) if success else 0.0


# ---- the same episode without ROS (policy development and unit tests) ----
def truth_observation(truths, target: str, stamp_s: float, path_clear: bool):
    """Certain answers from ground truth: what oracle_node serves, as an Observation."""
    from vlm_nav.perception.vocabulary import BEARINGS, DISTANCES, Observation
    seen = [t for t in truths if t.label == target and t.visible]
    if not seen:
        return Observation(target, stamp_s, 0.0, {b: 1.0 / 3.0 for b in BEARINGS},
                           {d: 0.5 for d in DISTANCES}, float(path_clear))
    o = min(seen, key=lambda t: t.distance_m)
    return Observation(target, stamp_s, 1.0, {b: float(b == o.image_bearing) for b in BEARINGS},
                       {d: float(d == o.distance) for d in DISTANCES}, float(path_clear))


def model_observer(backend):
    """perceive(world, target, stamp) -> Observation from a VLMBackend (the vlm_node's
    questions and reading of the answers)."""
    from vlm_nav.perception import vocabulary
    from vlm_nav.perception.vocabulary import Observation

    def perceive(world, target: str, stamp_s: float):
        image = world.render()
        visible, bearing, distance, path = backend.score(image,
                                                         vocabulary.target_questions(target))
        return Observation(target, stamp_s, float(visible.probs[0]),
                           dict(zip(bearing.choices, map(float, bearing.probs))),
                           dict(zip(distance.choices, map(float, distance.probs))),
                           float(path.probs[0]))
    return perceive


def free_text_answerer(backend):
    """perceive(...) -> Answer: the original design's free-text question, generated."""
    from vlm_nav.nav.free_text import Answer, free_text_prompt

    def perceive(world, target: str, stamp_s: float):
        prompt, budget = free_text_prompt('search', target)
        return Answer(stamp_s=stamp_s, answer=backend.generate(world.render(), prompt, budget))
    return perceive


def oracle_observer(world, target: str, stamp_s: float):
    return truth_observation(world.ground_truth(), target, stamp_s, world.path_clear())


def simulate_episode(episode: Episode, perceive=oracle_observer, timeout_s: float = 90.0,
                     collision_limit: int = 5, success_distance_m: float = 1.3,
                     latency_s: float = 0.1, camera_hz: float = 10.0,
                     use_odometry: bool = True, policy=None,
                     navigator: Optional[Dict] = None, use_scan: bool = False) -> Dict:
    """One search episode in simulated time with the navigator's policy and limiter but no
    ROS: camera frames at camera_hz; one perception request in flight at a time, on the
    newest frame, answered latency_s later (the model's time, as the navigator's
    call_async to the vlm_node); control at 20 Hz, kinematics at 30 Hz as in sim_node.
    Independent of the machine's load. navigator: navigator_node's parameters (default:
    config/vlm_nav.yaml's), for the policy's configuration and the velocity limits.
    use_scan: the simulator's range scan (sim_node's defaults), taken with each frame, goes
    to the policy too. Returns the benchmark's row."""
    from vlm_nav.nav.limits import VelocityLimiter
    from vlm_nav.nav.policy import config_from_parameters, NavigationPolicy
    from vlm_nav.nav.scan_map import Scan
    from vlm_nav.sim import make_layout, World
    from vlm_nav.sim.world import SCAN_BEAMS, SCAN_RANGE_M
    from vlm_nav.bringup.profiles import node_parameters
    navigator = node_parameters('navigator_node') if navigator is None else navigator
    config = config_from_parameters(navigator)
    if policy is None:
        policy = NavigationPolicy(config)
    policy.reset('search', episode.target)
    limiter = VelocityLimiter(config.max_linear, config.max_angular,
                              float(navigator.get('max_linear_accel', 0.5)),
                              float(navigator.get('max_angular_accel', 2.0)))
    physics_dt, control_dt = 1.0 / 30.0, 1.0 / 20.0
    with World(make_layout(episode.seed)) as world:
        world.reset_robot(*episode.start)
        t, next_control, next_frame = 0.0, 0.0, 0.0
        pending, obs, frame_t, calls = None, None, None, 0
        scan = None
        linear = angular = 0.0
        trajectory = [tuple(world.robot_pose)]
        decisions, outcome = 0, 'timeout'
        while t < timeout_s:
            if t >= next_frame:
                frame_t = t
                next_frame += 1.0 / camera_hz
                if use_scan:
                    scan = Scan(-math.pi, 2.0 * math.pi / SCAN_BEAMS, world.scan(),
                                SCAN_RANGE_M, pose=tuple(world.robot_pose))
            if pending is not None and pending[0] <= t:
                obs, pending = pending[1], None
                decisions += 1
            if pending is None and frame_t is not None:
                pending = (t + latency_s, perceive(world, episode.target, frame_t))
                frame_t = None
                calls += 1
            if t >= next_control and obs is not None:
                next_control += control_dt
                if isinstance(policy, NavigationPolicy):
                    decision = policy.decide(obs, t, tuple(world.robot_pose) if use_odometry
                                             else None, scan)
                else:
                    decision = policy.decide(obs, t)
                if decision.arrived:
                    linear, angular = limiter.stop()
                    outcome = 'arrived'
                    break
                linear, angular = limiter.limit(decision.linear, decision.angular, control_dt)
            world.step(linear, angular, physics_dt)
            t += physics_dt
            trajectory.append(tuple(world.robot_pose))
            if world.collisions >= collision_limit:
                outcome = 'collisions'
                break
        distance, in_view = math.nan, False
        if outcome == 'arrived':
            for truth in world.ground_truth():
                if truth.label == episode.target:
                    distance, in_view = truth.distance_m, truth.visible
        success = outcome == 'arrived' and distance <= success_distance_m and in_view
        actual = path_length(trajectory)
        return {'episode': episode.index, 'seed': episode.seed, 'target': episode.target,
                'outcome': outcome, 'success': int(success),
                'spl': round(spl(success, episode.shortest_m, actual), 4),
                'path_m': round(actual, 3), 'collisions': world.collisions,
                'time_s': round(t, 2), 'decisions': decisions, 'vlm_calls': calls,
                'inferences': calls, 'observe_failures': 0, 'stale_stops': 0,
                'shortest_m': round(episode.shortest_m, 3),
                'target_in_view': int(in_view),
                'final_distance_m': round(distance, 3) if math.isfinite(distance) else '',
                'trajectory': [(round(x, 3), round(y, 3), round(a, 3))
                               for x, y, a in trajectory[::3]]}


# ---- running episodes over ROS ----
class _Watcher:
    """What the benchmark observes of an episode (a plain rclpy node's subscriptions)."""

    def __init__(self, node):
        from nav_msgs.msg import Odometry
        from std_msgs.msg import String
        from vlm_nav_interfaces.msg import NavigatorState
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
    """One ROS context for the whole run. The vlm_node (model) is its own process, loaded
    once, as on a robot: in this process its forward pass (Python-heavy for a small model)
    held the GIL and starved the simulator and navigator; the simulator, navigator and
    oracle are fresh nodes in this process for every episode."""

    def __init__(self, args):
        import rclpy
        from vlm_nav.bringup.profiles import default_params_file
        self.args = args
        os.environ.setdefault('ROS_DOMAIN_ID', str(os.getpid() % 90 + 110))
        os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
        self.rclpy = rclpy
        self.params_file = args.params_file or default_params_file()
        rclpy.init(args=['vlm_nav_bench', '--ros-args', '--params-file', self.params_file])
        self.clock_s = 0.0          # each episode's simulated clock starts after the last
        self.vlm = None             # the vlm_node process (a bringup Stack)
        self.vlm_stats: Dict[str, str] = {}        # its newest /diagnostics values

    def _sim_time(self) -> List:
        from rclpy.parameter import Parameter
        return [Parameter('use_sim_time', value=True)]

    def ensure_vlm(self):
        if self.vlm is None:
            import tempfile
            from vlm_nav.bringup.supervisor import Stack
            from vlm_nav.bringup.profiles import NodeSpec
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
        """(requests answered or failed, cache hits) so far, from vlm_node's next
        /diagnostics (published every simulated second; up to 10 s wall is waited)."""
        self.vlm_stats = {}
        deadline = time.monotonic() + 10.0
        while not self.vlm_stats and time.monotonic() < deadline:
            time.sleep(0.05)
        s = self.vlm_stats
        return (int(s.get('requests_ok', 0)) + int(s.get('requests_failed', 0)),
                int(s.get('cache_hits', 0)))

    def run(self, episode: Episode, policy: str) -> Dict:
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.parameter import Parameter
        from vlm_nav.navigator_node import NavigatorNode
        from vlm_nav.bench.oracle_node import OracleNode
        from vlm_nav.sim_node import SimNode
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
                Parameter('mode', value='search'), Parameter('target', value=episode.target)],
            cli_args=remap if oracle else None)
        nodes.append(nav)
        # A fresh watcher per episode: a node that outlived a torn-down executor stopped
        # receiving odometry in a loaded run.
        watch_node = self.rclpy.create_node('vlm_nav_bench')
        self.watcher = _Watcher(watch_node)
        from diagnostic_msgs.msg import DiagnosticArray
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
        self.rclpy.try_shutdown()


class NoRosRunner:
    """The same episodes through simulate_episode: the model runs in this process."""

    def __init__(self, args):
        from vlm_nav.bringup.profiles import node_parameters
        self.args = args
        self.backend = None
        self.navigator = node_parameters('navigator_node', args.params_file or '')

    def run(self, episode: Episode, policy: str) -> Dict:
        from vlm_nav.nav.free_text import FreeTextPolicy
        a = self.args
        if not policy.startswith('oracle') and self.backend is None:
            import torch
            from vlm_nav.models import load_backend
            torch.set_num_threads(a.torch_threads)
            self.backend = load_backend(a.model)
        started = time.monotonic()
        kwargs = dict(timeout_s=a.timeout_s, collision_limit=a.collision_limit,
                      success_distance_m=a.success_distance_m,
                      navigator=self.navigator)
        kwargs['use_scan'] = policy.endswith('_scan')
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
              'wall_s']


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
    metrics = [('success_rate', 'success rate'), ('spl', 'SPL'),
               ('collisions_per_episode', 'collisions / episode'),
               ('time_to_find_s', 'time to find (sim s, successes)'),
               ('vlm_calls_per_episode', 'VLM calls / episode')]
    fig = Figure(figsize=(3.0 * len(metrics), 3.8))
    colors = {'original': 'tab:gray', 'scored': 'tab:blue', 'oracle': 'tab:green',
              'scored_scan': 'tab:purple', 'oracle_scan': 'tab:olive'}
    for i, (key, title) in enumerate(metrics):
        ax = fig.add_subplot(1, len(metrics), i + 1)
        values = [summary[p][key] or 0.0 for p in policies]
        ax.bar(policies, values, color=[colors[p] for p in policies])
        for x, v in enumerate(values):
            ax.annotate(f'{v:.2f}', (x, v), ha='center', va='bottom', fontsize=8)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis='x', labelrotation=30, labelsize=8)
        if key in ('success_rate', 'spl'):
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
    from vlm_nav.sim import make_layout, save_top_down
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
                        default=list(POLICIES),
                        help='the _scan ones add the simulated lidar (use_scan)')
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
                        help='with --report-only: recompute every row\'s shortest path and SPL '
                             'by the current definition (same episodes, recorded outcome and '
                             'path kept) and rewrite episodes.csv')


def rescore(rows: List[Dict], meta: Dict) -> Tuple[List[Dict], List[Episode]]:
    """Rows with shortest_m and spl recomputed by the current shortest-path definition, for
    results recorded under an earlier one (each row's episode is rebuilt from its seed),
    and the rebuilt episodes."""
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
        out.append(dict(row, shortest_m=round(episode.shortest_m, 3),
                        spl=round(spl(success, episode.shortest_m, float(row['path_m'])), 4)))
    return out, episodes


SHORTEST_PATH = (f'8-connected A* on a {GRID_M} m grid around walls and objects (robot '
                 'radius 0.2 m) to within success_distance_m of the target, no wall between '
                 '(a viewpoint)')


def report(out: str, rescore_rows: bool = False) -> Dict[str, Dict]:
    """Summary and plots from an episodes.csv, partial or complete."""
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
            writer = csv.DictWriter(f, fields)
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
    runner = NoRosRunner(args) if args.no_ros else Runner(args)
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
                    print(f"[bench] ep {episode.index + 1}/{len(episodes)} seed {episode.seed} "
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
