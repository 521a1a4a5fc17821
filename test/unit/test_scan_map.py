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
The planar lidar: the simulator's scan, the map built from it, planning on that map.

And the policy exploring by it (no ROS), and navigator_node taking it over DDS.
"""

import math
import time

from conftest import AheadObserve, spinning
import numpy as np
import pytest

from vlm_nav.nav.policy import NavigationPolicy, PolicyConfig
from vlm_nav.nav.scan_map import lookahead_point, Scan, ScanMap
from vlm_nav.perception.vocabulary import Observation
from vlm_nav.sim import make_layout, World
from vlm_nav.sim.episodes import make_episodes, oracle_observer, simulate_episode
from vlm_nav.sim.world import SCAN_BEAMS, SCAN_RANGE_M

# Development layouts (not training, validation, held-out or benchmark seeds).
SEED_TWO_WALLS = 5_000_020


def _layout_with_walls(count: int):
    for seed in range(SEED_TWO_WALLS, SEED_TWO_WALLS + 50):
        layout = make_layout(seed)
        if len(layout.walls) - 4 == 2 * count:       # each interior wall is two pieces
            return layout
    raise AssertionError('no such layout')


def _scan(world: World) -> Scan:
    return Scan(-math.pi, 2.0 * math.pi / SCAN_BEAMS, world.scan(), SCAN_RANGE_M,
                pose=tuple(world.robot_pose))


def test_scan_ends_on_the_geometry():
    """
    Every return lies on a wall, door panel or object outline; just short of it is free.

    Beams with no return are clear out to range_max.
    """
    with World(_layout_with_walls(2)) as world:
        rng = np.random.default_rng(1)
        for _ in range(5):
            world.reset_robot(*world.random_free_pose(rng))
            x, y, yaw = world.robot_pose
            ranges = world.scan()
            angles = yaw - math.pi + np.arange(SCAN_BEAMS) * 2.0 * math.pi / SCAN_BEAMS
            hit = np.isfinite(ranges)
            assert hit.mean() > 0.9                 # the arena is at most 10 m across
            for r, a in zip(ranges[hit], angles[hit]):
                on = np.array([[x + r * math.cos(a), y + r * math.sin(a)]])
                before = np.array([[x + (r - 0.01) * math.cos(a),
                                    y + (r - 0.01) * math.sin(a)]])
                assert world._hits(on, 1e-3)[0] and not world._hits(before, 1e-6)[0]
            for a in angles[~hit]:
                s = np.linspace(0.05, SCAN_RANGE_M, 200)
                ray = np.stack([x + s * math.cos(a), y + s * math.sin(a)], axis=1)
                assert not world._hits(ray, 1e-3).any()


def test_scan_corridor_agrees_with_the_simulators_path_clear():
    """
    The scan's 'path ahead clear' against the simulator's exact swept disc.

    The scan's is a robot-wide rectangle; the disc is the truth the model is trained on:
    they may differ only at the rounded end of the disc's sweep.
    """
    with World(_layout_with_walls(1)) as world:
        rng = np.random.default_rng(2)
        agree = 0
        for _ in range(300):
            world.reset_robot(*world.random_free_pose(rng))
            agree += _scan(world).corridor_clear(0.8, 0.2) == world.path_clear(0.8)
        assert agree >= 0.95 * 300, agree


def test_map_of_a_few_scans_matches_the_layout():
    with World(_layout_with_walls(2)) as world:
        smap = ScanMap()
        rng = np.random.default_rng(3)
        for _ in range(8):
            world.reset_robot(*world.random_free_pose(rng))
            smap.integrate(world.robot_pose, _scan(world))
        occ_i, occ_j = np.nonzero(smap.occupied)
        ox, oy = smap.centre(occ_i, occ_j)
        pts = np.stack([ox, oy], axis=1)
        # occupied cells lie on geometry (within a cell's diagonal), free cells do not
        near_geometry = world._hits(pts, 0.1)
        assert len(pts) > 200 and near_geometry.mean() > 0.97, near_geometry.mean()
        free_i, free_j = np.nonzero(smap.free)
        fx, fy = smap.centre(free_i, free_j)
        inside = world._hits(np.stack([fx, fy], axis=1), 0.0)
        assert inside.mean() < 0.01, inside.mean()


def test_planned_path_keeps_clear_of_walls_and_reaches_a_viewpoint():
    """
    From a scan of a known layout: the path to the first goal keeps clear of everything.

    It keeps the robot's disc off every wall and object, and ends where the goal cell is
    in sight.
    """
    with World(_layout_with_walls(2)) as world:
        rng = np.random.default_rng(4)
        world.reset_robot(*world.random_free_pose(rng))
        smap = ScanMap()
        for k in range(12):                        # a look all round from the start
            x, y, yaw = world.robot_pose
            world.reset_robot(x, y, yaw + math.pi / 6)
            smap.integrate(world.robot_pose, _scan(world))
        planned = smap.plan(world.robot_pose)
        assert planned is not None
        path, goal = planned
        assert len(path) >= 1
        assert not world._hits(np.array(path), world.robot_radius).any()
        gx, gy = smap.centre(*goal)
        assert math.hypot(path[-1][0] - gx, path[-1][1] - gy) <= smap.view_m + 0.1
        assert smap.is_open(goal)
        target, left = lookahead_point(path, world.robot_pose, 0.35)
        assert left >= 0.0 and min(math.hypot(target[0] - p[0], target[1] - p[1])
                                   for p in path) < 1e-9


def test_a_wall_hides_what_is_behind_it_from_the_camera():
    """
    Marking what the camera looked at needs line of sight.

    Things beyond the beam toward them stay unlooked however they lie in the field of view.
    """
    smap = ScanMap(hfov_rad=math.radians(60.0), view_range_m=3.5)
    pose = (0.0, 0.0, 0.0)
    ranges = np.full(360, np.inf)
    angles = -math.pi + np.arange(360) * math.radians(1.0)
    ahead = np.abs(angles) < math.radians(40.0)
    ranges[ahead] = 1.0 / np.cos(angles[ahead])            # a wall at x = 1 m
    smap.integrate(pose, Scan(-math.pi, math.radians(1.0), ranges, 8.0))
    # a thing behind that wall, as an earlier scan from elsewhere would have mapped it
    i, j = smap.cell(np.array([2.5]), np.array([0.0]))
    smap.logodds[i[0] - 1:i[0] + 2, j[0] - 1:j[0] + 2] = 3.0
    scan = Scan(-math.pi, math.radians(1.0), ranges, 8.0)
    smap.mark_viewed(pose, scan)
    assert smap.looked[smap.cell(np.array([1.02]), np.array([0.0]))].all()     # the wall
    assert not smap.looked[i[0], j[0]]                                      # behind it


def test_policy_with_the_scan_finds_targets_on_ground_truth_answers():
    """
    No ROS: the policy with the simulated lidar and certain answers finds every target.

    On three development episodes, without touching anything, and its map of the layout
    is right.
    """
    for episode in make_episodes(3, first_seed=5_000_030):
        policy = NavigationPolicy()
        row = simulate_episode(episode, oracle_observer, latency_s=0.02, use_scan=True,
                               policy=policy)
        assert row['success'] and row['collisions'] == 0, (episode, row['outcome'])
        assert policy.scan_map is not None and policy.scan_map.scans > 10


def test_policy_goes_back_to_the_camera_when_the_scan_stops():
    """
    The path ahead is the scan's while one comes; without one the model's answer decides.

    Blocked here, though the model says clear.
    """
    policy = NavigationPolicy(PolicyConfig())
    policy.reset('search', 'red ball')
    ranges = np.full(180, np.inf)
    ranges[90] = 0.5                                     # something 0.5 m straight ahead
    blocked = Scan(-math.pi, 2.0 * math.pi / 180, ranges, 8.0)
    ahead = Observation('red ball', 0.0, 0.95, {'left': 0.0, 'center': 1.0, 'right': 0.0},
                        {'near': 0.0, 'far': 1.0}, 1.0)
    d = policy.decide(ahead, 0.0, (0.0, 0.0, 0.0), blocked)
    assert d.linear < 0.1 and 'scan: blocked' in d.reason, d
    # (a detour began; with odometry standing still it can only go on turning)
    d = policy.decide(ahead, 0.1, (0.0, 0.0, 0.0), None)
    assert 'P(clear)=1.00' in d.reason and 'scan' not in d.reason, d
    fresh = NavigationPolicy(PolicyConfig())
    fresh.reset('search', 'red ball')
    d = fresh.decide(ahead, 0.0, (0.0, 0.0, 0.0), None)
    assert d.phase == 'approaching' and d.linear > 0.0, d


@pytest.mark.ros
def test_navigator_node_takes_the_scan_over_dds_and_refuses_a_bad_one(ros_domain):
    """
    A real navigator_node holds its ground by the scan, against the camera's answer.

    In this process, a real Observe service that says the way to a centred far target is
    clear, odometry, and a LaserScan with a wall 0.4 m ahead. A malformed scan (no angle
    increment) is refused and counted, and once scans stop the camera's answer decides
    again.
    """
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from nav_msgs.msg import Odometry
    from rclpy.context import Context
    from rclpy.node import Node
    from rclpy.parameter import Parameter
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import LaserScan
    from vlm_nav_interfaces.msg import NavigatorState
    from vlm_nav.navigator_node import NavigatorNode

    context = Context()
    rclpy.init(context=context)
    navigator = NavigatorNode(context=context, parameter_overrides=[
        Parameter('mode', value='search'), Parameter('target', value='red ball'),
        Parameter('visualization_rate_hz', value=0.0)])
    probe = Node('scan_probe', context=context)

    AheadObserve(probe, center_prob=1.0)
    states, diagnostics = [], []
    probe.create_subscription(NavigatorState, 'vlm_nav/navigator_state', states.append, 50)
    probe.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 50)
    odom_pub = probe.create_publisher(Odometry, 'odom', 10)
    scan_pub = probe.create_publisher(LaserScan, 'scan', qos_profile_sensor_data)
    mode = {'scan': 'wall'}

    def publish():
        stamp = probe.get_clock().now().to_msg()
        odom = Odometry()
        odom.header.stamp = stamp
        odom.header.frame_id = 'odom'
        odom.pose.pose.orientation.w = 1.0
        odom_pub.publish(odom)
        if mode['scan'] is None:
            return
        scan = LaserScan()
        scan.header.stamp = stamp
        scan.header.frame_id = 'base_link'
        scan.angle_min = -math.pi
        scan.angle_increment = 0.0 if mode['scan'] == 'bad' else 2.0 * math.pi / 180
        scan.range_max = 8.0
        ranges = [math.inf] * 180
        ranges[88:93] = [0.4] * 5
        scan.ranges = ranges
        scan_pub.publish(scan)

    probe.create_timer(0.05, publish)

    def wait_for(condition, what, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, f'{what}: {[s.reason for s in states[-3:]]}'
            time.sleep(0.05)

    with spinning(context, navigator, probe):
        wait_for(lambda: sum('scan: blocked' in s.reason for s in states) >= 10,
                 'the scan never blocked the way')
        held = [s for s in states if 'scan: blocked' in s.reason]
        assert all(s.linear_x <= 0.08 + 1e-6 for s in held), [s.linear_x for s in held]
        mode['scan'] = 'bad'
        wait_for(lambda: any(v.key == 'scans_refused' and int(v.value) > 0
                             for d in diagnostics for st in d.status
                             if st.name.endswith('navigator_node') for v in st.values),
                 'a bad scan was not counted')
        mode['scan'] = None
        since = len(states)
        # (held by the scan it began a detour, which odometry standing still keeps turning)
        wait_for(lambda: any('P(clear)=1.00' in s.reason for s in states[since:]),
                 'without scans the camera did not decide again')
