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
The FindObject action over DDS on the simulator with the embedded model.

One stack for the module: the robot starts 1.8 m from the red ball, facing it. Goals
find it with feedback, end canceled (the robot stopped within a control period),
preempted (by a goal, by SetTarget), timed out or refused (a thing the model does not
know). The target's pose on vlm_nav/target_pose lies where the simulator put it.
"""

import json
import math
import time

from action_msgs.msg import GoalStatus
from conftest import running_stack
from geometry_msgs.msg import PoseStamped, Twist
import pytest
import rclpy
from rclpy.action import ActionClient
from std_msgs.msg import String

from vlm_nav.bringup.profiles import profile_nodes
from vlm_nav_interfaces.action import FindObject
from vlm_nav_interfaces.srv import SetTarget

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SEED = 5                                 # red ball at (0.06, 0.05)
START = [1.86, 0.05, math.pi]            # 1.8 m east of it, facing it, nothing between
CONTROL_PERIOD_S = 1.0 / 20.0            # navigator control_rate_hz (config default)
REFUSED = 'the embedded model knows: red ball, red box, '


@pytest.fixture(scope='module')
def stack(ros_domain, tmp_path_factory):
    specs = profile_nodes('sim', seed=SEED)
    specs[0].parameters['start_pose'] = START
    specs[3].parameters.update({'mode': 'idle', 'visualization_rate_hz': 0.0})
    with running_stack(specs, tmp_path_factory.mktemp('logs')) as running:
        yield running


class Goals:
    """An action client on the probe: send goals, collect feedback, wait for results."""

    count = 0

    def __init__(self, probe):
        self.probe = probe
        # The client is made on a node no executor spins yet: rclpy's executor may list an
        # ActionClient that is still being built and die on it (no attribute '_lock').
        Goals.count += 1
        node = rclpy.create_node(f'find_object_client_{Goals.count}', context=probe.context)
        self.client = ActionClient(node, FindObject, 'vlm_nav/find_object')
        probe.executor.add_node(node)
        assert self.client.wait_for_server(timeout_sec=30.0), 'no FindObject server'

    def send(self, target: str, mode: str = '', timeout_s: float = 0.0):
        feedback = []
        future = self.client.send_goal_async(
            FindObject.Goal(target=target, mode=mode, timeout_s=timeout_s),
            feedback_callback=lambda msg: feedback.append((time.monotonic(), msg.feedback)))
        assert self.probe.wait_for(future.done, 10.0), 'goal not answered'
        handle = future.result()
        assert handle.accepted
        return handle, feedback

    def result(self, handle, timeout: float):
        future = handle.get_result_async()
        assert self.probe.wait_for(future.done, timeout), f'no result within {timeout} s'
        return future.result()


def _vocabulary_known(probe, timeout: float = 120.0) -> None:
    """Wait until the navigator refuses what the embedded model does not know."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = probe.call(SetTarget, 'vlm_nav/set_target',
                              SetTarget.Request(target='purple ball', mode='search'))
        if not response.success:
            return
        time.sleep(1.0)
    pytest.fail(f'the navigator never learnt the vocabulary: {response.message}')


def test_find_the_red_ball_with_feedback(stack, probe):
    probe.record(String, 'sim/ground_truth')
    _vocabulary_known(probe)
    goals = Goals(probe)
    started = time.monotonic()
    handle, feedback = goals.send('The Red Ball', timeout_s=120.0)
    wrapped = goals.result(handle, 150.0)
    ended = time.monotonic()
    result = wrapped.result
    assert wrapped.status == GoalStatus.STATUS_SUCCEEDED, result
    assert result.success and result.outcome == 'arrived', result
    assert 'red ball' in result.message and 'the the' not in result.message
    assert 0.0 < result.elapsed_s < 120.0
    # Feedback at 2 Hz at least, all the way.
    times = [t for t, _ in feedback]
    assert len(times) >= 2 * (ended - started) - 3, (len(times), ended - started)
    assert max(b - a for a, b in zip([started] + times, times + [ended])) < 1.0
    last = feedback[-1][1]
    assert last.visible_prob > 0.5 and abs(last.bearing_rad) < 0.5, last
    assert 0.0 <= last.since_seen_s < 1.0 and last.elapsed_s > 0.0
    assert math.isnan(last.distance_m) or 0.1 < last.distance_m < 2.0
    assert any(f.phase != 'arrived' for _, f in feedback)
    # and it is in front of the ball, by the simulator's truth
    assert probe.wait_for(lambda: probe.messages('sim/ground_truth'), 5.0)
    truth = json.loads(probe.messages('sim/ground_truth')[-1].data)
    ball = next(o for o in truth['objects'] if o['label'] == 'red ball')
    assert ball['distance_m'] <= 1.3 and ball['visible'], ball


def test_the_target_pose_is_where_the_ball_is(stack, probe):
    probe.record(PoseStamped, 'vlm_nav/target_pose')
    probe.record(String, 'sim/ground_truth')
    _vocabulary_known(probe)
    goals = Goals(probe)
    handle, _ = goals.send('red ball', timeout_s=60.0)   # in view, near after the test above
    wrapped = goals.result(handle, 90.0)
    result = wrapped.result
    assert result.outcome == 'arrived' and result.target_pose_known, result
    assert probe.wait_for(lambda: probe.messages('sim/ground_truth'), 5.0)
    truth = json.loads(probe.messages('sim/ground_truth')[-1].data)
    ball = next(o for o in truth['objects'] if o['label'] == 'red ball')
    poses = probe.messages('vlm_nav/target_pose')
    assert poses, 'no target pose published'
    for pose in poses + [result.target_pose]:
        assert pose.header.frame_id == 'odom'
        assert math.hypot(pose.pose.position.x - ball['x'],
                          pose.pose.position.y - ball['y']) < 0.3, (pose, ball)
        q = pose.pose.orientation
        assert math.hypot(q.z, q.w) == pytest.approx(1.0)
    stamp = result.target_pose.header.stamp
    assert stamp.sec or stamp.nanosec


def test_cancel_stops_the_robot_within_a_control_period(stack, probe):
    probe.record(Twist, 'cmd_vel')
    goals = Goals(probe)
    handle, _ = goals.send('blue box')             # not in view: it turns to look
    assert probe.wait_for(lambda: any(t.angular.z or t.linear.x
                                      for t in probe.messages('cmd_vel')), 20.0)
    future = handle.cancel_goal_async()
    assert probe.wait_for(future.done, 5.0)
    answered = time.monotonic()
    assert future.result().goals_canceling
    wrapped = goals.result(handle, 10.0)
    assert wrapped.status == GoalStatus.STATUS_CANCELED
    assert wrapped.result.outcome == 'canceled' and not wrapped.result.success
    time.sleep(0.5)
    after = [(t, m) for t, m in probe.timed('cmd_vel') if t > answered + CONTROL_PERIOD_S]
    assert all(m.linear.x == m.angular.z == 0.0 for _, m in after), after
    zeros = [t for t, m in probe.timed('cmd_vel')
             if t <= answered + CONTROL_PERIOD_S and m.linear.x == m.angular.z == 0.0]
    assert zeros and zeros[-1] > answered - 1.0


def test_a_new_goal_and_set_target_preempt(stack, probe):
    goals = Goals(probe)
    first, _ = goals.send('blue box')
    second, _ = goals.send('green cone', mode='follow')
    wrapped = goals.result(first, 10.0)
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.outcome == 'preempted' and 'green cone' in wrapped.result.message
    response = probe.call(SetTarget, 'vlm_nav/set_target',
                          SetTarget.Request(target='A Blue Chair', mode='search'))
    assert response.success and "'blue chair'" in response.message, response.message
    wrapped = goals.result(second, 10.0)
    assert wrapped.result.outcome == 'preempted' and 'blue chair' in wrapped.result.message
    probe.call(SetTarget, 'vlm_nav/set_target', SetTarget.Request(mode='idle'))


def test_a_goal_times_out_and_stops(stack, probe):
    goals = Goals(probe)
    handle, feedback = goals.send('yellow cone', timeout_s=2.0)   # not in this room
    wrapped = goals.result(handle, 15.0)
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    result = wrapped.result
    assert result.outcome == 'timeout' and not result.success, result
    assert 2.0 <= result.elapsed_s < 3.0 and feedback


@pytest.mark.parametrize('target, mode, why', [
    ('purple ball', '', REFUSED), ('rote Kugel', 'search', REFUSED),
    ('red ball', 'explore', 'unknown mode'), ('<image> red ball', '', 'markup')])
def test_goals_the_model_cannot_serve_are_refused(stack, probe, target, mode, why):
    goals = Goals(probe)
    handle, _ = goals.send(target, mode=mode)
    wrapped = goals.result(handle, 10.0)
    assert wrapped.status == GoalStatus.STATUS_ABORTED
    assert wrapped.result.outcome == 'refused' and why in wrapped.result.message


def test_set_target_refuses_what_the_model_does_not_know(stack, probe):
    response = probe.call(SetTarget, 'vlm_nav/set_target',
                          SetTarget.Request(target='something red', mode='search'))
    assert not response.success
    assert response.message.startswith("the embedded model does not know 'something red'")
    assert REFUSED in response.message and '(model:=...)' in response.message
