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

"""A scan's frame over DDS: placed on the base by scan_to_base, or refused and reported."""

import math
import time

from conftest import AheadObserve, spinning
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import Odometry
import numpy as np
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data
import room_scans
from sensor_msgs.msg import LaserScan

from vlm_nav.navigator_node import NavigatorNode
from vlm_nav_interfaces.msg import NavigatorState

pytestmark = pytest.mark.ros

# The world in the base frame (the robot stands at the odometry origin): a room, and a
# post 0.55 m ahead that blocks the way.
ROOM = (-2.95, 3.05, -2.45, 2.55)
POSTS = ((0.55, 0.03, 0.12), (-1.2, 1.4, 0.25))
BEAMS = 360
STEP = 2.0 * math.pi / BEAMS
# The lidar: 0.2 m ahead, 0.1 m left, 0.3 m up, upside down, turned a quarter left.
MOUNT = [0.2, 0.1, 0.3, math.pi, 0.0, math.pi / 2]


def raycast(x, y, directions, range_max=8.0):
    return room_scans.raycast(x, y, directions, ROOM, POSTS, range_max)


def scan_ranges(frame):
    """Return what a lidar in frame (base_link, or laser at MOUNT) reads."""
    angles = -math.pi + np.arange(BEAMS) * STEP
    if frame == 'base_link':
        return raycast(0.0, 0.0, angles)
    x, y, _, roll, _, yaw = MOUNT
    return raycast(x, y, yaw + (-1.0 if roll else 1.0) * angles)


def test_a_scan_in_an_offset_frame_maps_as_one_in_base_link_and_an_unknown_one_is_refused(
        ros_domain):
    """
    Three navigators, the same world: a lidar at base_link, one at laser, one unknown.

    The laser one, with scan_frame laser and the matching scan_to_base, maps the same
    walls and posts as the base_link one, and its scan blocks the way as that one's does.
    The third gets scans in laser with no transform: refused, counted and reported on
    /diagnostics with the frame and what to set; it never maps them.
    """
    context = Context()
    rclpy.init(context=context)
    common = [Parameter('mode', value='search'), Parameter('target', value='red ball'),
              Parameter('visualization_rate_hz', value=0.0)]
    setups = {'flat': ('base_link', []),
              'mounted': ('laser', [Parameter('scan_frame', value='laser'),
                                    Parameter('scan_to_base', value=MOUNT)]),
              'unknown': ('laser', [])}
    navigators, probes, states = {}, {}, {}
    diagnostics = []
    for ns, (frame, parameters) in setups.items():
        navigators[ns] = NavigatorNode(context=context, namespace=ns,
                                       parameter_overrides=common + parameters)
        probe = probes[ns] = Node('frames_probe', namespace=ns, context=context)
        AheadObserve(probe, center_prob=1.0)
        states[ns] = []
        probe.create_subscription(NavigatorState, 'vlm_nav/navigator_state',
                                  states[ns].append, 50)
        odom_pub = probe.create_publisher(Odometry, 'odom', 10)
        scan_pub = probe.create_publisher(LaserScan, 'scan', qos_profile_sensor_data)
        ranges = scan_ranges(frame).astype(np.float32).tolist()

        def publish(probe=probe, odom_pub=odom_pub, scan_pub=scan_pub, frame=frame,
                    ranges=ranges):
            stamp = probe.get_clock().now().to_msg()
            odom = Odometry()
            odom.header.stamp, odom.header.frame_id = stamp, 'odom'
            odom.pose.pose.orientation.w = 1.0
            odom_pub.publish(odom)
            scan = LaserScan()
            scan.header.stamp, scan.header.frame_id = stamp, frame
            scan.angle_min, scan.angle_increment = -math.pi, STEP
            scan.angle_max = -math.pi + (BEAMS - 1) * STEP
            scan.range_max, scan.ranges = 8.0, ranges
            scan_pub.publish(scan)

        probe.create_timer(0.05, publish)
    probes['flat'].create_subscription(DiagnosticArray, '/diagnostics', diagnostics.append,
                                       50)

    def refusal():
        for array in diagnostics:
            for status in array.status:
                values = {v.key: v.value for v in status.values}
                if status.name.endswith('navigator_node') and \
                        'scan_refused_because' in values:
                    return status, values
        return None

    def mapped(ns):
        grid = navigators[ns]._policy.scan_map
        return 0 if grid is None else grid.scans

    deadline = time.monotonic() + 30.0
    with spinning(context, *navigators.values(), *probes.values()):
        while not (mapped('flat') >= 10 and mapped('mounted') >= 10 and refusal() and
                   all(sum('scan: blocked' in s.reason for s in states[ns]) >= 5
                       for ns in ('flat', 'mounted'))):
            assert time.monotonic() < deadline, (
                {ns: mapped(ns) for ns in navigators},
                {ns: [s.reason for s in states[ns][-2:]] for ns in states}, refusal())
            time.sleep(0.05)
        flat = navigators['flat']._policy.scan_map.occupied.copy()
        mounted = navigators['mounted']._policy.scan_map.occupied.copy()
        unknown_map = navigators['unknown']._policy.scan_map
        unknown_blocked = any('scan: blocked' in s.reason for s in states['unknown'])
    overlap = (flat & mounted).sum() / (flat | mounted).sum()
    # the same cells but what each sees behind the posts (they look from 0.22 m apart)
    assert overlap > 0.8, overlap
    assert unknown_map is None and not unknown_blocked
    status, values = refusal()
    assert status.level == b'\x01', status            # WARN
    assert int(values['scans_refused']) > 0 and int(values['scans_received']) > 0
    for words in ("frame 'laser'", "scan_frame: 'laser'", 'scan_to_base', 'base_link'):
        assert words in values['scan_refused_because'], values['scan_refused_because']
        assert words in status.message, status.message
