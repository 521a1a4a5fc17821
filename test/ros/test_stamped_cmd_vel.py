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

"""enable_stamped_cmd_vel: every command the navigator sends is a TwistStamped."""

import time

from conftest import AheadObserve, spinning
from geometry_msgs.msg import TwistStamped
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from vlm_nav.navigator_node import NavigatorNode

pytestmark = pytest.mark.ros


def test_stamped_commands_reach_a_twist_stamped_subscriber(ros_domain):
    context = Context()
    rclpy.init(context=context)
    navigator = NavigatorNode(context=context, parameter_overrides=[
        Parameter('mode', value='search'), Parameter('target', value='red ball'),
        Parameter('enable_stamped_cmd_vel', value=True),
        Parameter('base_frame', value='base_footprint'),
        Parameter('perception_timeout_s', value=0.3),
        Parameter('visualization_rate_hz', value=0.0)])
    probe = Node('stamped_probe', context=context)
    perception = AheadObserve(probe)
    commands = []
    probe.create_subscription(TwistStamped, 'cmd_vel',
                              lambda msg: commands.append((time.monotonic(), msg)), 50)

    def moving():
        return [m for _, m in commands if m.twist.linear.x or m.twist.angular.z]

    with spinning(context, probe) as executor:
        executor.add_node(navigator)
        deadline = time.monotonic() + 30.0
        while len(moving()) < 5:
            assert time.monotonic() < deadline, 'no stamped motion'
            time.sleep(0.05)
        perception.alive = False                 # perception goes stale: a stamped stop
        died = time.monotonic()
        while not [t for t, m in commands if t > died + 0.5]:
            assert time.monotonic() < deadline, 'no stamped stop'
            time.sleep(0.05)
        executor.remove_node(navigator)
        count = len(commands)
        navigator.destroy_node()                 # shutting down: a stamped stop
        while len(commands) == count:
            assert time.monotonic() < deadline, 'no stop on shutdown'
            time.sleep(0.05)
    assert all(m.header.frame_id == 'base_footprint' for _, m in commands)
    now = time.time()
    assert all(now - 60.0 < m.header.stamp.sec <= now + 1.0 for _, m in commands)
    assert commands[-1][1].twist.linear.x == commands[-1][1].twist.angular.z == 0.0
    stopped = [m for t, m in commands if t > died + 0.5]
    assert stopped and all(m.twist.linear.x == m.twist.angular.z == 0.0 for m in stopped)
