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
A navigator held up in the middle of a control tick must not send motion afterwards.

test_faults once caught it under load: a tick read the clock while its observation was
0.25 s old, the process was then starved for 0.8 s, and the tick published a turn on
perception by then 1 s old (0.3 s allowed). Here the stall is made on purpose: a real
navigator_node and a real Observe service in one process over DDS, and the policy's
decide() held up for 0.6 s once, while the service stops answering (the camera died).
"""

import time

from conftest import AheadObserve, spinning, stamp_s, time_s
import pytest
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from vlm_nav.navigator_node import NavigatorNode
from vlm_nav_interfaces.msg import NavigatorState

pytestmark = pytest.mark.ros

TIMEOUT_S = 0.3
STALL_S = 0.6


def test_motion_decided_before_a_stall_is_not_sent_after_it(ros_domain):
    context = Context()
    rclpy.init(context=context)
    navigator = NavigatorNode(context=context, parameter_overrides=[
        Parameter('mode', value='search'), Parameter('target', value='red ball'),
        Parameter('perception_timeout_s', value=TIMEOUT_S),
        Parameter('visualization_rate_hz', value=0.0)])
    probe = Node('starve_probe', context=context)
    perception = AheadObserve(probe)
    states = []
    probe.create_subscription(NavigatorState, 'vlm_nav/navigator_state', states.append, 50)

    decide, stalls = navigator._policy.decide, []

    def stalled_decide(*args, **kwargs):
        # Once, after the robot is moving: the camera dies and this tick is held up.
        if not stalls and sum(s.linear_x > 0.0 for s in states) >= 5:
            stalls.append(time.monotonic())
            perception.alive = False
            time.sleep(STALL_S)
        return decide(*args, **kwargs)
    navigator._policy.decide = stalled_decide

    with spinning(context, navigator, probe):
        deadline = time.monotonic() + 30.0
        while not (stalls and time.monotonic() > stalls[0] + STALL_S + 1.0):
            assert time.monotonic() < deadline, f'never moved: {states[-3:]}'
            time.sleep(0.05)

    moving = [s for s in states if s.linear_x != 0.0 or s.angular_z != 0.0]
    assert len(moving) >= 5
    # Every moving command went out on perception no older than the timeout (the state is
    # stamped as it is published; a few ms for the publish itself).
    late = [(stamp_s(s) - time_s(s.frame_stamp), s.reason) for s in moving
            if stamp_s(s) - time_s(s.frame_stamp) > TIMEOUT_S + 0.02]
    assert not late, late
    # and the held-up tick itself went out as a stale stop
    after = [s for s in states if stamp_s(s) > stamp_s(moving[-1])]
    assert after and after[0].stale and after[0].linear_x == after[0].angular_z == 0.0, after[:2]
