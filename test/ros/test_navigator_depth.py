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
A depth camera and no lidar, over DDS: sim_node's depth, the navigator's use_depth.

sim_node publishes the colour render's depth (REP 118) aligned with the colour image; the
navigator, with use_depth and no scan, maps the depth as a planar scan, finds the red
ball with the embedded model, and publishes its pose from the depth within 0.3 m of the
simulator's truth. The recorder's default topics hold the depth and its camera_info, and
the bag player replays both. A depth image it cannot use (an encoding that is not depth, no
camera_info, an uncalibrated camera_info, an unknown frame) is refused, counted and
reported on /diagnostics; the navigator goes on.
"""

import json
import math
import os
import subprocess
import sys
import time

from conftest import AheadObserve, running_stack, spinning
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import PoseStamped, Twist
from nav_msgs.msg import OccupancyGrid, Odometry
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import String
from test_find_object import _vocabulary_known, Goals

from vlm_nav.bringup.profiles import NodeSpec, profile_nodes
from vlm_nav.navigator_node import NavigatorNode
from vlm_nav.ros.bags import Bag
from vlm_nav.ros.image import depth_to_metres, image_to_rgb, metres_to_depth_image
from vlm_nav.sim import make_layout, World
from vlm_nav.sim.world import camera_to_base

pytestmark = [pytest.mark.ros]

CI_FIRST_SEED = 3_100_004                # the CI episodes of test_bench_nav's floor

SEED = 5                                 # red ball at (0.06, 0.05)
START = [1.86, 0.05, math.pi]            # 1.8 m east of it, facing it, nothing between


def test_16uc1_millimetres_and_faults_from_sim_node(ros_domain, probe, tmp_path):
    probe.record(Image, 'camera/depth/image_raw', qos_profile_sensor_data)
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    probe.record(LaserScan, 'scan', qos_profile_sensor_data)
    specs = profile_nodes('sim', seed=SEED)[:1]
    specs[0].parameters.update({'start_pose': START, 'depth_encoding': '16UC1',
                                'depth_max_range': 4.0, 'depth_min_range': 1.0,
                                'publish_scan': False})
    with running_stack(specs, tmp_path):
        assert probe.wait_for(lambda: probe.messages('camera/depth/image_raw'), 30.0)
        msg = probe.messages('camera/depth/image_raw')[-1]
    assert msg.encoding == '16UC1' and msg.step == 2 * msg.width
    raw = np.frombuffer(bytes(msg.data), '<u2').reshape(msg.height, msg.width)
    with World(make_layout(SEED)) as world:
        world.reset_robot(*START)
        _, clean = world.render_rgbd(4.0)
    # Millimetres, 0 where invalid: beyond 4 m and nearer than the 1 m minimum range.
    invalid = ~(clean >= 1.0)
    assert invalid.any() and (~invalid).sum() > 1000
    assert (raw[invalid] == 0).all()
    assert np.abs(raw[~invalid] - clean[~invalid] * 1000.0).max() <= 0.5 + 1e-3
    assert not probe.messages('scan')


def test_depth_is_recorded_by_default_and_replays_with_its_camera_info(
        ros_domain, probe, tmp_path):
    bag = tmp_path / 'rgbd'
    specs = profile_nodes('sim', seed=SEED)[:1]
    specs[0].parameters.update({'start_pose': START, 'publish_scan': False})
    specs.append(NodeSpec('recorder', 'recorder', {'output': str(bag),
                                                   'max_duration_s': 8.0}))
    with running_stack(specs, tmp_path) as stack:
        assert probe.wait_for(lambda: 'recorder' in stack.dead(), 60.0), 'recorder ran on'
        assert stack.processes['recorder'].returncode == 0
    with Bag(str(bag)) as opened:
        topics = opened.topics()
    assert topics['/camera/depth/image_raw'] == ('sensor_msgs/msg/Image', topics[
        '/camera/depth/image_raw'][1]) and topics['/camera/depth/image_raw'][1] >= 10, topics
    assert topics['/camera/depth/camera_info'][1] >= 10, topics
    probe.record(Image, 'camera/depth/image_raw', qos_profile_sensor_data)
    probe.record(CameraInfo, 'camera/depth/camera_info', qos_profile_sensor_data)
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    player = NodeSpec('bag_player_node', 'bag_player_node', {
        'bag': str(bag), 'camera_topic': '/camera/image_raw',
        'depth_topic': 'camera/depth/image_raw', 'rate': 2.0})
    (tmp_path / 'replay').mkdir()
    with running_stack([player], tmp_path / 'replay') as stack:
        assert probe.wait_for(lambda: stack.dead() == ['bag_player_node'], 60.0)
        assert stack.processes['bag_player_node'].returncode == 0
    depths = probe.messages('camera/depth/image_raw')
    infos = probe.messages('camera/depth/camera_info')
    assert len(depths) >= 5 and len(infos) >= 5, (len(depths), len(infos))
    with World(make_layout(SEED)) as world:
        world.reset_robot(*START)
        _, expected = world.render_rgbd()
        k = world.camera_intrinsics()
    np.testing.assert_array_equal(depth_to_metres(depths[-1]), expected)
    assert depths[-1].header.frame_id == infos[-1].header.frame_id == 'camera'
    assert (infos[-1].k[0], infos[-1].k[2]) == pytest.approx((k.fx, k.cx))


def test_unusable_depth_is_refused_and_reported(ros_domain):
    """
    A navigator with use_depth gets depth it cannot use, one problem after another.

    Each is refused, counted and reported on /diagnostics with the reason, and the
    navigator keeps running; then good depth (with odometry) is mapped; when it stops, it
    goes stale after depth_timeout_s: not used, and reported.
    """
    context = Context()
    rclpy.init(context=context)
    k = World(make_layout(SEED))
    k.reset_robot(*START)
    _, depth = k.render_rgbd()
    intrinsics, mount = k.camera_intrinsics(), camera_to_base(k.layout)
    k.close()
    navigator = NavigatorNode(context=context, parameter_overrides=[
        Parameter('mode', value='search'), Parameter('target', value='red ball'),
        Parameter('visualization_rate_hz', value=0.0), Parameter('use_depth', value=True),
        Parameter('use_scan', value=False), Parameter('depth_camera_to_base', value=mount)])
    probe = Node('depth_probe', context=context)
    AheadObserve(probe)
    diagnostics = []
    probe.create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append, 50)
    depth_pub = probe.create_publisher(Image, 'camera/depth/image_raw',
                                       qos_profile_sensor_data)
    info_pub = probe.create_publisher(CameraInfo, 'camera/depth/camera_info',
                                      qos_profile_sensor_data)
    odom_pub = probe.create_publisher(Odometry, 'odom', 10)
    setup = {'encoding': 'rgb8', 'info': None, 'frame': 'camera', 'odom': False,
             'depth': True}

    def publish():
        stamp = probe.get_clock().now().to_msg()
        if setup['odom']:
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id = stamp, 'odom'
            odom.pose.pose.orientation.w = 1.0
            odom_pub.publish(odom)
        if setup['info'] is not None:
            info = CameraInfo(width=96, height=96, k=setup['info'])
            info.header.stamp, info.header.frame_id = stamp, setup['frame']
            info_pub.publish(info)
        if not setup['depth']:
            return
        msg = metres_to_depth_image(depth, stamp, setup['frame'], '32FC1')
        if setup['encoding'] != '32FC1':
            msg.encoding = setup['encoding']
        depth_pub.publish(msg)

    probe.create_timer(0.1, publish)

    def reported(text, since):
        for array in diagnostics[since:]:
            for status in array.status:
                values = {v.key: v.value for v in status.values}
                if status.name.endswith('navigator_node') and \
                        text in values.get('depth_refused_because', ''):
                    return status, values
        return None

    good_k = [intrinsics.fx, 0.0, intrinsics.cx, 0.0, intrinsics.fy, intrinsics.cy,
              0.0, 0.0, 1.0]
    steps = [({}, 'not a depth encoding'),
             ({'encoding': '32FC1'}, 'no camera_info'),
             ({'info': [0.0] * 9}, 'focal lengths'),
             ({'info': good_k, 'frame': 'elsewhere'}, "frame 'elsewhere'"),
             ({'frame': 'camera'}, 'no odometry yet')]
    with spinning(context, navigator, probe):
        for change, text in steps:
            setup.update(change)
            since = len(diagnostics)
            deadline = time.monotonic() + 15.0
            while reported(text, since) is None:
                assert time.monotonic() < deadline, (text, [
                    {v.key: v.value for v in s.values} for a in diagnostics[-1:]
                    for s in a.status])
                time.sleep(0.1)
            status, values = reported(text, since)
            assert status.level == DiagnosticStatus.WARN, status
            assert 'depth image refused' in status.message or \
                status.message.startswith('stopped'), status
            assert int(values['depth_refused']) >= 1
        setup['odom'] = True
        deadline = time.monotonic() + 15.0
        while navigator._policy.scan_map is None or navigator._policy.scan_map.scans < 5:
            assert time.monotonic() < deadline, 'good depth never mapped'
            time.sleep(0.1)
        refused = navigator._depths['refused']
        time.sleep(1.0)
        assert navigator._depths['refused'] == refused
        assert navigator._fresh_scan(navigator.get_clock().now().nanoseconds * 1e-9) is not None
        assert not navigator._depth_problem
        # The depth camera stops: after depth_timeout_s (0.5 s) no scan is used, and
        # /diagnostics says so.
        setup['depth'] = False
        since = len(diagnostics)
        deadline = time.monotonic() + 10.0
        while not any('depth stale' in status.message for array in diagnostics[since:]
                      for status in array.status):
            assert time.monotonic() < deadline, 'stale depth not reported'
            time.sleep(0.1)
        assert navigator._fresh_scan(navigator.get_clock().now().nanoseconds * 1e-9) is None


@pytest.mark.slow
def test_closed_loop_regression_floor_with_depth(tmp_path, ros_domain):
    """
    Three episodes of scored_depth (embedded model, depth camera, no lidar) over ROS.

    The CI episodes of test_bench_nav's floor for scored and scored_scan, on sim time at
    real time. Floor: at least 1 of 3 found, none ended on the collision limit, no stop at
    the wrong place. It fails when the depth loop breaks: no depth, depth placed wrongly
    (the floor mapped as a wall), a map that drives into things.
    """
    out = tmp_path / 'nav'
    result = subprocess.run(
        [sys.executable, '-m', 'vlm_nav.cli.main', 'bench', 'nav', '--episodes', '3',
         '--first-seed', str(CI_FIRST_SEED), '--policies', 'scored_depth',
         '--real-time-factor', '1', '--timeout-s', '60', '--trajectories', '0',
         '--out', str(out)],
        capture_output=True, text=True, timeout=900, env=dict(os.environ))
    episodes = [line for line in result.stdout.splitlines() if line.startswith('[bench] ep')]
    print('\n'.join(episodes))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / 'summary.json').read_text())['summary']['scored_depth']
    assert summary['episodes'] == 3, episodes
    assert summary['success_rate'] >= 1 / 3 - 1e-6, episodes
    assert summary['outcomes'].get('collisions', 0) == 0, episodes
    assert summary['wrong_stops'] == 0, episodes


# The stack for the last tests: it runs until the module ends, in the module's domain, so
# the tests above (their own sim_node, a navigator of their own, a bench run) come first.
@pytest.fixture(scope='module')
def stack(ros_domain, tmp_path_factory):
    specs = profile_nodes('sim', seed=SEED)
    specs[0].parameters.update({'start_pose': START, 'publish_scan': False})
    specs[3].parameters.update({
        'mode': 'idle', 'visualization_rate_hz': 2.0, 'use_scan': False, 'use_depth': True,
        'depth_camera_to_base': camera_to_base(make_layout(SEED))})
    with running_stack(specs, tmp_path_factory.mktemp('logs')) as running:
        yield running


def _occupied(grid: OccupancyGrid) -> int:
    return int((np.asarray(grid.data) > 50).sum())


def _truth(probe, label):
    assert probe.wait_for(lambda: probe.messages('sim/ground_truth'), 5.0)
    truth = json.loads(probe.messages('sim/ground_truth')[-1].data)
    return truth, next(o for o in truth['objects'] if o['label'] == label)


@pytest.mark.slow
def test_the_depth_is_the_colour_frames_and_the_navigator_finds_the_ball_by_it(stack, probe):
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    probe.record(Image, 'camera/depth/image_raw', qos_profile_sensor_data)
    probe.record(CameraInfo, 'camera/depth/camera_info', qos_profile_sensor_data)
    probe.record(PoseStamped, 'vlm_nav/target_pose')
    probe.record(OccupancyGrid, 'vlm_nav/scan_map')
    probe.record(Twist, 'cmd_vel')
    probe.record(String, 'sim/ground_truth')
    probe.record(DiagnosticArray, '/diagnostics')
    # The depth before the robot moves: the colour frame's stamp and frame, 32FC1 metres,
    # as the simulator renders it at the start pose.
    assert probe.wait_for(lambda: len(probe.messages('camera/depth/image_raw')) >= 3 and
                          probe.messages('camera/depth/camera_info'), 30.0)
    depth_msg = probe.messages('camera/depth/image_raw')[-1]
    colour = {(m.header.stamp.sec, m.header.stamp.nanosec): m
              for m in probe.messages('camera/image_raw')}
    stamp = (depth_msg.header.stamp.sec, depth_msg.header.stamp.nanosec)
    assert stamp in colour, 'no colour frame with the depth image stamp'
    assert depth_msg.header.frame_id == colour[stamp].header.frame_id == 'camera'
    assert depth_msg.encoding == '32FC1' and (depth_msg.width, depth_msg.height) == (96, 96)
    info = probe.messages('camera/depth/camera_info')[-1]
    assert info.header.frame_id == 'camera' and info.k[0] > 0.0
    with World(make_layout(SEED)) as world:
        world.reset_robot(*START)
        rgb, expected = world.render_rgbd()
    assert np.array_equal(image_to_rgb(colour[stamp]), rgb)
    np.testing.assert_array_equal(depth_to_metres(depth_msg), expected)

    _vocabulary_known(probe)
    goals = Goals(probe)
    handle, _ = goals.send('red ball', timeout_s=120.0)
    wrapped = goals.result(handle, 150.0)
    result = wrapped.result
    assert result.outcome == 'arrived' and result.target_pose_known, result
    truth, ball = _truth(probe, 'red ball')
    assert ball['distance_m'] <= 1.3 and ball['visible'], ball
    assert truth['collisions'] == 0
    # The target's pose from the depth at its bearing, where the simulator put the ball.
    poses = probe.messages('vlm_nav/target_pose')
    assert len(poses) >= 3, 'no target pose published'
    for pose in poses + [result.target_pose]:
        assert pose.header.frame_id == 'odom'
        assert math.hypot(pose.pose.position.x - ball['x'],
                          pose.pose.position.y - ball['y']) < 0.3, (pose, ball)
    # The depth was mapped: the map holds the ball and the walls in view, and no refusal.
    assert probe.wait_for(lambda: probe.messages('vlm_nav/scan_map'), 5.0)
    assert _occupied(probe.messages('vlm_nav/scan_map')[-1]) >= 10
    values = probe.next_diagnostics('navigator_node')
    # (one may come before the navigator has camera_info or odometry at start-up)
    assert int(values['depth_received']) >= 10 and int(values['depth_refused']) <= 2, values
    assert values['scans_received'] == '0' and 'depth_refused_because' not in values, values
    assert values['depth_camera_info'] == 'True'


@pytest.mark.slow
def test_searching_out_of_view_it_drives_and_maps_without_contact(stack, probe):
    probe.record(OccupancyGrid, 'vlm_nav/scan_map')
    probe.record(String, 'sim/ground_truth')
    probe.record(Twist, 'cmd_vel')
    _vocabulary_known(probe)
    before, _ = _truth(probe, 'red ball')
    goals = Goals(probe)
    handle, _ = goals.send('blue box', timeout_s=25.0)          # in the far corner room
    assert probe.wait_for(lambda: probe.messages('vlm_nav/scan_map'), 10.0)
    first = _occupied(probe.messages('vlm_nav/scan_map')[0])
    wrapped = goals.result(handle, 60.0)
    assert wrapped.result.outcome in ('timeout', 'arrived'), wrapped.result
    after, _ = _truth(probe, 'red ball')
    moved = math.hypot(after['robot']['x'] - before['robot']['x'],
                       after['robot']['y'] - before['robot']['y'])
    turned = sum(abs(t.angular.z) for t in probe.messages('cmd_vel'))
    assert moved > 0.5 or turned > 20.0, (moved, turned)
    assert after['collisions'] == 0
    assert _occupied(probe.messages('vlm_nav/scan_map')[-1]) > first
