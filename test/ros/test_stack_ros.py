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
The foundation stack as real processes over DDS: the plumbing.

camera_node (test pattern), vlm_node (a small LLaVA of real classes, random weights),
scene_describer_node and navigator_node, started the way `vlm-nav bringup` starts them.
Model quality is tested elsewhere; this checks the plumbing: services, stamps, Twist,
watchdog, bad input.
"""

import math
import signal
import time

from conftest import held_up_s, running_stack, stamp_s
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vlm_nav.bringup.profiles import profile_nodes
from vlm_nav_interfaces.msg import NavigatorState, SceneDescription
from vlm_nav_interfaces.srv import Ask, Observe, SetTarget

pytestmark = pytest.mark.ros

TIMEOUT_S = 1.0   # navigator perception_timeout_s (config default)


@pytest.fixture(scope='module')
def stack(ros_domain, tiny_llava_dir, tmp_path_factory):
    specs = profile_nodes('explore', model=tiny_llava_dir)
    specs[0].parameters.update({'width': 96, 'height': 96})
    # near_threshold 1.0: a random model must never 'arrive' (the stop would hide the watchdog)
    specs[3].parameters = {'mode': 'idle', 'near_threshold': 1.0}
    log_dir = tmp_path_factory.mktemp('logs')
    with running_stack(specs, log_dir) as running:
        yield running


def _model_ready(probe, timeout=60.0):
    """Wait until vlm_node answers Ask successfully (model loaded, frames flowing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = probe.call(Ask, 'vlm_nav/ask', Ask.Request(question='Is the path ahead clear?',
                                                       choices=['yes', 'no']))
        if r.success:
            return r
        time.sleep(0.5)
    pytest.fail(f'vlm_node never became ready: {r.message}')


def test_ask_scores_choices_on_the_newest_frame(stack, probe):
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    _model_ready(probe)
    response = probe.call(Ask, 'vlm_nav/ask', Ask.Request(
        question='Where is the red ball?', choices=['left', 'center', 'right']))
    assert response.success, response.message
    assert len(response.scores) == 3
    assert math.isclose(sum(response.scores), 1.0, abs_tol=1e-4)
    assert response.answer == ['left', 'center', 'right'][
        max(range(3), key=lambda i: response.scores[i])]
    assert response.model_name and response.latency_s >= 0.0
    # The probe's best-effort copy of that frame may arrive after the answer does.
    stamp = (response.frame_stamp.sec, response.frame_stamp.nanosec)
    assert probe.wait_for(lambda: stamp in {(m.header.stamp.sec, m.header.stamp.nanosec)
                                            for m in probe.messages('camera/image_raw')},
                          5.0), 'the answer names a frame the camera never sent'


def test_ask_free_text_and_sent_image(stack, probe):
    _model_ready(probe)
    response = probe.call(Ask, 'vlm_nav/ask', Ask.Request(question='Describe the scene.',
                                                          max_new_tokens=5))
    assert response.success, response.message
    assert isinstance(response.answer, str)
    image = Image(height=8, width=8, encoding='rgb8', step=24, data=bytes(8 * 8 * 3))
    image.header.stamp.sec = 1234
    response = probe.call(Ask, 'vlm_nav/ask', Ask.Request(question='Is there a red ball?',
                                                          choices=['yes', 'no'], image=image))
    assert response.success, response.message
    assert response.frame_stamp.sec == 1234


@pytest.mark.parametrize('request_kwargs, reason', [
    ({'question': '', 'choices': ['yes', 'no']}, 'empty'),
    ({'question': 'x' * 5000}, 'limit'),
    ({'question': 'ok?\x07', 'choices': ['yes']}, 'control'),
    ({'question': 'ok?', 'choices': ['yes', 'yes']}, 'distinct'),
    ({'question': 'ok?', 'image': Image(height=4, width=4, encoding='rgb8', step=12,
                                        data=bytes(10))}, 'bytes'),
    ({'question': 'ok?', 'image': Image(height=4, width=4, encoding='weird', step=12,
                                        data=bytes(48))}, 'encoding'),
])
def test_bad_ask_requests_are_refused_with_a_message(stack, probe, request_kwargs, reason):
    response = probe.call(Ask, 'vlm_nav/ask', Ask.Request(**request_kwargs))
    assert not response.success
    assert reason in response.message


@pytest.mark.parametrize('target, mode, reason', [
    ('', 'search', 'empty'), ('red ball', 'dance', 'unknown mode'),
    ('red\nball', 'search', 'control'), ('b' * 500, 'follow', 'limit')])
def test_bad_set_target_is_refused(stack, probe, target, mode, reason):
    response = probe.call(SetTarget, 'vlm_nav/set_target',
                          SetTarget.Request(target=target, mode=mode))
    assert not response.success
    assert reason in response.message


def test_describer_publishes_text_and_structured(stack, probe):
    probe.record(String, 'scene_description')
    probe.record(SceneDescription, 'scene_description/structured')
    _model_ready(probe)
    assert probe.wait_for(lambda: probe.messages('scene_description/structured')
                          and probe.messages('scene_description'), 30.0)
    scene = probe.messages('scene_description/structured')[-1]
    assert scene.header.stamp.sec > 0 and scene.model_name
    assert scene.inference_latency_s > 0.0


def test_bad_frames_are_skipped_counted_and_the_node_stays_up(stack, probe):
    probe.record(DiagnosticArray, '/diagnostics')
    publisher = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    bad = [Image(height=4, width=4, encoding='yuv422_weird', step=12, data=bytes(48)),
           Image(height=4, width=4, encoding='rgb8', step=5, data=bytes(20)),
           Image(height=4, width=4, encoding='rgb8', step=12, data=bytes(7))]

    def rejected():
        for array in probe.messages('/diagnostics'):
            for status in array.status:
                if status.name == 'vlm_nav: vlm_node':
                    values = {kv.key: kv.value for kv in status.values}
                    if int(values.get('frames_rejected', 0)) > 0:
                        return values
        return None
    deadline = time.monotonic() + 15.0     # keep sending until discovery has matched us
    while rejected() is None and time.monotonic() < deadline:
        for msg in bad:
            publisher.publish(msg)
        time.sleep(0.1)
    assert rejected() is not None, 'vlm_node never reported a rejected frame'
    assert rejected()['last_reject_reason']
    assert _model_ready(probe).success     # still serving


def test_search_drives_and_stale_perception_stops(stack, probe):
    probe.record(Twist, 'cmd_vel')
    probe.record(NavigatorState, 'vlm_nav/navigator_state')
    probe.record(DiagnosticArray, '/diagnostics')
    _model_ready(probe)
    observed = probe.call(Observe, 'vlm_nav/observe', Observe.Request(target='red ball'))
    assert observed.success, observed.message
    assert observed.observation.bearing_labels == ['left', 'center', 'right']
    response = probe.call(SetTarget, 'vlm_nav/set_target',
                          SetTarget.Request(target='red ball', mode='search'))
    assert response.success, response.message

    # Twist and NavigatorState of one tick travel on two topics: wait for the state of a
    # moving tick itself, not for the Twist (the state delivered last may be older).
    def moving_state():
        return next((s for s in reversed(probe.messages('vlm_nav/navigator_state'))
                     if abs(s.linear_x) + abs(s.angular_z) > 1e-3), None)
    assert probe.wait_for(moving_state, 20.0), \
        f'navigator never commanded motion: {probe.messages("vlm_nav/navigator_state")[-3:]}'
    state = moving_state()
    assert state.mode == 'search' and state.target == 'red ball'
    assert not state.stale and state.reason and state.perception_age_s >= 0.0
    assert probe.wait_for(lambda: any(abs(t.linear.x) + abs(t.angular.z) > 1e-3
                                      for t in probe.messages('cmd_vel')), 5.0)
    for t in probe.messages('cmd_vel'):
        assert abs(t.linear.x) <= 0.3 + 1e-6 and abs(t.angular.z) <= 1.0 + 1e-6

    # Each frame is decided on once, as soon as it arrives: the navigator's Observe names
    # the frame it has (newer_than) and vlm_node holds the call until the next one. When
    # the stamp went through float seconds it missed, the same frame came back at once (a
    # cache hit, not acted on) and the next frame waited for a control tick: 2 of 3 calls.
    # Counted over the next ten or more calls however long a loaded machine takes for them.
    before = probe.next_diagnostics('vlm_node', 10.0)

    def ten_more_calls():
        now = probe.diagnostics('vlm_node', since=0.0)
        return now if int(now['requests_ok']) - int(before['requests_ok']) >= 10 else None
    assert probe.wait_for(ten_more_calls, 60.0), 'vlm_node answered fewer than 10 calls'
    after = ten_more_calls()
    calls = int(after['requests_ok']) - int(before['requests_ok'])
    hits = int(after['cache_hits']) - int(before['cache_hits'])
    assert hits <= 0.2 * calls, (calls, hits)

    # Watchdog: the camera dies; within the timeout (+ one camera and one control period)
    # the navigator publishes zero and says it is stale. Measured on the navigator's own
    # stamps (each tick publishes Twist and NavigatorState together), so this probe's
    # scheduling on a loaded machine doesn't count; delivery gets its own, looser bound.
    killed_clock = probe.node.get_clock().now().nanoseconds * 1e-9
    stack.processes['camera_node'].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    assert probe.wait_for(lambda: probe.messages('vlm_nav/navigator_state')[-1].stale, 10.0)
    after = [s for s in probe.messages('vlm_nav/navigator_state')
             if stamp_s(s) > killed_clock]
    last_moving = max((i for i, s in enumerate(after) if s.linear_x or s.angular_z),
                      default=-1)
    first_stop = after[last_moving + 1]
    assert first_stop.stale, first_stop.reason
    published = stamp_s(first_stop) - killed_clock
    camera_period, control_period = 0.1, 0.05     # config defaults
    held_up = held_up_s(probe.messages('vlm_nav/navigator_state'), first_stop,
                        control_period, killed_clock)
    assert published <= TIMEOUT_S + camera_period + control_period + 0.1 + held_up, \
        (published, held_up)
    timed = probe.timed('cmd_vel')
    first_zero = next(t for t, m in timed if t > killed and m.linear.x == 0.0
                      and m.angular.z == 0.0 and all(
                          mm.linear.x == 0.0 and mm.angular.z == 0.0
                          for tt, mm in timed if tt >= t))
    assert first_zero - killed <= TIMEOUT_S + 1.0, first_zero - killed
    time.sleep(0.5)
    assert all(m.linear.x == 0.0 and m.angular.z == 0.0
               for t, m in probe.timed('cmd_vel') if t > first_zero)
