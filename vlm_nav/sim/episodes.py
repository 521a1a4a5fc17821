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
Search episodes without ROS: the held-out episodes, shortest paths, SPL, one episode's loop.

The closed loop runs in simulated time, for policy development, the product's tests and
the no-ROS navigation benchmark.

Episode i: layout seed first_seed + i (3 000 000.. by default; training used 0..5999,
validation 1 000 000.., held-out evaluation 2 000 000..), a target drawn from the
layout's objects, a random collision-free start at least min_start_m from the target
and with a path to it. It ends when the navigator says 'arrived', at the time limit, or
at the collision limit. Success: arrived, with the robot's centre within
success_distance_m of the target's centre and the target in view (ground truth of the
first camera frame after the stop).

SPL (Anderson et al. 2018, as in Habitat ObjectNav): success x shortest / max(actual,
shortest). shortest = 8-connected A* on a 0.05 m grid of the layout, cells where the
robot disc (radius 0.2 m) touches no wall or object are free, from the start to the
nearest free cell within success_distance_m of the target's centre with no wall between
it and the target (a viewpoint, as Habitat ObjectNav measures to the object's nearest
viewpoint: success needs the target in view, so a cell just behind a wall is no end).
actual = length of the odometry path.
"""

from dataclasses import dataclass
import heapq
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from vlm_nav.bringup.profiles import node_parameters
from vlm_nav.nav.depth_scan import depth_scan
from vlm_nav.nav.free_text import Answer, free_text_prompt
from vlm_nav.nav.limits import VelocityLimiter
from vlm_nav.nav.policy import config_from_parameters, NavigationPolicy
from vlm_nav.nav.scan_map import Scan
from vlm_nav.perception import vocabulary
from vlm_nav.perception.vocabulary import BEARINGS, DISTANCES, Observation
from vlm_nav.sim.layout import make_layout
from vlm_nav.sim.world import DEPTH_RANGE_M, SCAN_BEAMS, SCAN_RANGE_M, World

FIRST_SEED = 3_000_000
GRID_M = 0.05
# Habitat ObjectNav's success distance (Batra et al. 2020), reported beside the benchmark's
# own (success_distance_m, 1.3 m): columns success_1m and spl_1m.
HABITAT_SUCCESS_M = 1.0
SHORTEST_PATH = (f'8-connected A* on a {GRID_M} m grid around walls and objects (robot '
                 'radius 0.2 m) to within success_distance_m of the target, no wall between '
                 '(a viewpoint)')


# ---- episodes, shortest paths, SPL ----
@dataclass
class Episode:
    index: int
    seed: int
    target: str
    start: Tuple[float, float, float]
    target_xy: Tuple[float, float]
    shortest_m: float
    shortest_1m: float = math.inf    # ... to a viewpoint within HABITAT_SUCCESS_M


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
    """
    Return the A* length from start to the nearest viewpoint of goal; inf if none.

    A viewpoint is a free cell within goal_radius of goal with no wall between it and goal
    (with need_view=False: any free cell within goal_radius).
    """
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
    """Make the benchmark's episodes: same arguments, same episodes on any machine."""
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
            shortest_1m = shortest_path_m(world, (x, y), (obj.x, obj.y), HABITAT_SUCCESS_M)
        episodes.append(Episode(i, seed, target, (x, y, yaw), (obj.x, obj.y), shortest,
                                shortest_1m))
    return episodes


def path_length(trajectory) -> float:
    return float(sum(math.hypot(b[0] - a[0], b[1] - a[1])
                     for a, b in zip(trajectory, trajectory[1:])))


def spl(success: bool, shortest: float, actual: float) -> float:
    return float(success) * shortest / max(actual, shortest) if success else 0.0


def habitat_columns(episode: Episode, outcome: str, distance: float, in_view: bool,
                    actual: float) -> Dict:
    """
    Return success and SPL at Habitat ObjectNav's success distance (HABITAT_SUCCESS_M).

    Same stop and view test as the benchmark's success; SPL to a viewpoint within that
    distance.
    """
    success = outcome == 'arrived' and distance <= HABITAT_SUCCESS_M and in_view
    # (a stop the 0.05 m grid's A* finds no path to: the benchmark's shortest path instead)
    shortest = episode.shortest_1m if math.isfinite(episode.shortest_1m) else \
        episode.shortest_m
    return {'success_1m': int(success), 'spl_1m': round(spl(success, shortest, actual), 4),
            'shortest_1m': round(episode.shortest_1m, 3)}


# ---- observers: perceive(world, target, stamp_s) -> what the policy decides on ----
def truth_observation(truths, target: str, stamp_s: float, path_clear: bool):
    """Certain answers from ground truth: what oracle_node serves, as an Observation."""
    seen = [t for t in truths if t.label == target and t.visible]
    if not seen:
        return Observation(target, stamp_s, 0.0, dict.fromkeys(BEARINGS, 1.0 / 3.0),
                           dict.fromkeys(DISTANCES, 0.5), float(path_clear))
    o = min(seen, key=lambda t: t.distance_m)
    return Observation(target, stamp_s, 1.0, {b: float(b == o.image_bearing) for b in BEARINGS},
                       {d: float(d == o.distance) for d in DISTANCES}, float(path_clear))


def model_observer(backend):
    """
    Return perceive(world, target, stamp) -> Observation from a VLMBackend.

    The questions and the reading of the answers are the vlm_node's.
    """

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
    """Return perceive(...) -> Answer: the original design's free-text question, generated."""

    def perceive(world, target: str, stamp_s: float):
        prompt, budget = free_text_prompt('search', target)
        return Answer(stamp_s=stamp_s, answer=backend.generate(world.render(), prompt, budget))
    return perceive


def oracle_observer(world, target: str, stamp_s: float):
    return truth_observation(world.ground_truth(), target, stamp_s, world.path_clear())


# ---- one episode in simulated time ----
def simulate_episode(episode: Episode, perceive=oracle_observer, timeout_s: float = 90.0,
                     collision_limit: int = 5, success_distance_m: float = 1.3,
                     latency_s: float = 0.1, camera_hz: float = 10.0,
                     use_odometry: bool = True, policy=None,
                     navigator: Optional[Dict] = None, use_scan: bool = False,
                     use_depth: bool = False) -> Dict:
    """
    Run one search episode in simulated time; return the benchmark's row.

    The navigator's policy and limiter without ROS: camera frames at camera_hz; one
    perception request in flight at a time, on the newest frame, answered latency_s later
    (the model's time, as the navigator's call_async to the vlm_node); control at 20 Hz,
    kinematics at 30 Hz as in sim_node. Independent of the machine's load.
    navigator: navigator_node's parameters (default: config/vlm_nav.yaml's), for the
    policy's configuration and the velocity limits. use_scan: the simulator's range scan
    (sim_node's defaults), taken with each frame, goes to the policy too. use_depth
    (instead): the frame's depth image (World.render_rgbd, DEPTH_RANGE_M) as a virtual
    planar scan over the camera's view (nav/depth_scan.py), as navigator_node's use_depth
    makes it.
    """
    if use_scan and use_depth:
        raise ValueError('use_scan or use_depth, not both')
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
                elif use_depth:
                    _, depth = world.render_rgbd(DEPTH_RANGE_M)
                    scan = depth_scan(depth, world.camera_intrinsics(), world.camera_mount(),
                                      DEPTH_RANGE_M, pose=tuple(world.robot_pose))
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
                **habitat_columns(episode, outcome, distance, in_view, actual),
                'path_m': round(actual, 3), 'collisions': world.collisions,
                'time_s': round(t, 2), 'decisions': decisions, 'vlm_calls': calls,
                'inferences': calls, 'observe_failures': 0, 'stale_stops': 0,
                'shortest_m': round(episode.shortest_m, 3),
                'target_in_view': int(in_view),
                'final_distance_m': round(distance, 3) if math.isfinite(distance) else '',
                'trajectory': [(round(x, 3), round(y, 3), round(a, 3))
                               for x, y, a in trajectory[::3]]}
