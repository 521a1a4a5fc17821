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
Fault injection on the running stack: the robot never moves on stale or bad perception.

Real processes over DDS, started as `vlm-nav bringup` starts them: camera_node (test
pattern), vlm_node (a small LLaVA of real classes, random weights), scene_describer_node,
navigator_node searching, and the recorder. Each test breaks one thing while the robot
moves (SIGKILL, SIGSTOP, lagging or future-stamped frames, a VLM answering garbage, a
stalled describer), measures the time from the fault to the first zero Twist on cmd_vel
(as received by a probe, so DDS delivery is included), then repairs it and checks that
motion resumes.

Stop deadline. The navigator publishes zero at the first control tick at which the newest
observation's frame is older than perception_timeout_s. That frame was captured before the
fault, so the zero comes at most timeout + one control period + delivery after the fault;
frames are up to one camera period old when the model sees them, which the timeout must
also cover. Hence the timeout below: 0.5 s - camera period - control period - 0.1 s for
delivery and scheduling on a loaded machine.
"""

import json
import math
import os
import signal
import threading
import time
from typing import Dict, List, Tuple

from conftest import held_up_s, Probe, running_stack, stamp_s
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
import pytest
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.camera_node import test_pattern as pattern_frame
from vlm_nav.ros.image import rgb_to_image
from vlm_nav_interfaces.msg import NavigatorState
from vlm_nav_interfaces.srv import Observe

pytestmark = pytest.mark.ros

DEADLINE_S = 0.5
CAMERA_RATE_HZ = 20.0
CONTROL_RATE_HZ = 20.0
PERCEPTION_TIMEOUT_S = round(DEADLINE_S - 1.0 / CAMERA_RATE_HZ - 1.0 / CONTROL_RATE_HZ - 0.1, 3)
MAX_LINEAR, MAX_ANGULAR = 0.3, 1.0
LATENCIES: Dict[str, Tuple[float, float]] = {}


@pytest.fixture(scope='module')
def stack(ros_domain, tiny_llava_dir, tmp_path_factory):
    bag = tmp_path_factory.mktemp('bag') / 'faults'
    specs = [
        NodeSpec('camera_node', 'camera_node', {'width': 96, 'height': 96,
                                                'rate_hz': CAMERA_RATE_HZ}),
        # One torch thread: two would fight the other processes for the two cores.
        NodeSpec('vlm_node', 'vlm_node', {'model': tiny_llava_dir, 'threads': 1}),
        NodeSpec('scene_describer_node', 'scene_describer_node', {'max_new_tokens': 8}),
        # near_threshold 1.0: a random model must never 'arrive' (the robot would hold
        # still and a stop could not be told apart from arrival).
        NodeSpec('navigator_node', 'navigator_node', {
            'mode': 'search', 'target': 'red ball', 'control_rate_hz': CONTROL_RATE_HZ,
            'perception_timeout_s': PERCEPTION_TIMEOUT_S, 'request_timeout_s': 1.0,
            'near_threshold': 1.0, 'max_linear_speed': MAX_LINEAR,
            'max_angular_speed': MAX_ANGULAR}),
        NodeSpec('recorder', 'recorder', {'output': str(bag)}),
    ]
    log_dir = tmp_path_factory.mktemp('logs')
    with running_stack(specs, log_dir) as running:
        running.bag = bag
        running.spec = {s.name: s for s in specs}
        yield running
        for process in running.processes.values():    # nothing may stay stopped
            if process.poll() is None:
                process.send_signal(signal.SIGCONT)
    print('stop latencies, fault -> first zero Twist (published / received by the probe):')
    for name, (published, received) in LATENCIES.items():
        print(f'  {name:32s} {published * 1e3:5.0f} ms / {received * 1e3:5.0f} ms')


@pytest.fixture(scope='module')
def watch(stack):
    """One probe for the whole module: every Twist of every test is checked at the end."""
    probe = Probe('fault_probe')
    probe.record(Twist, 'cmd_vel')
    probe.record(NavigatorState, 'vlm_nav/navigator_state')
    probe.record(DiagnosticArray, '/diagnostics')
    # A second camera for the stamp tests, created now so discovery is done by then.
    probe.camera = probe.node.create_publisher(Image, 'camera/image_raw',
                                               qos_profile_sensor_data)
    yield probe
    probe.close()


# ---- helpers ---------------------------------------------------------------------------------
def _zero(t: Twist) -> bool:
    return t.linear.x == 0.0 and t.angular.z == 0.0


def _steady_motion(probe: Probe, window: int = 10) -> bool:
    twists = probe.messages('cmd_vel')[-window:]
    states = probe.messages('vlm_nav/navigator_state')[-window:]
    return (len(twists) == window and not any(_zero(t) for t in twists) and
            len(states) == window and not any(s.stale for s in states))


def wait_steady_motion(probe: Probe, timeout: float = 60.0) -> None:
    assert probe.wait_for(lambda: _steady_motion(probe), timeout), \
        f'robot never moved steadily; last state: {probe.messages("vlm_nav/navigator_state")[-1:]}'


def measure_stop(probe: Probe, fault: 'Fault', name: str, hold_s: float = 1.0) -> float:
    """
    Seconds from the fault to the first zero Twist of the stop that follows.

    Measured where the Twist is published: each control tick publishes the Twist and a
    NavigatorState stamped with the navigator's clock (same values), so scheduling delays
    of this probe don't count. Delivery to the probe is measured as well and reported.
    The stop must be the watchdog's (stale) and everything must stay zero for the hold.
    """
    def states_after():
        return [s for s in probe.messages('vlm_nav/navigator_state')
                if stamp_s(s) > fault.clock_s]

    def first_stale():
        return next((stamp_s(s) for s in states_after() if s.stale), None)
    assert probe.wait_for(lambda: first_stale() is not None, 5.0), f'{name}: never stale'

    def final_stop():
        """
        Return the states and the first zero Twist after the last moving one.

        A frame delivered late on a loaded machine may still be younger than the timeout
        and move the robot once more.
        """
        states = states_after()
        last_moving = max((i for i, s in enumerate(states)
                           if s.linear_x != 0.0 or s.angular_z != 0.0), default=-1)
        return states, (states[last_moving + 1] if last_moving < len(states) - 1 else None)

    # Hold: until states stamped hold_s after that stop have arrived (not a fixed sleep:
    # on a loaded machine this probe may receive them late).
    def held():
        states, stop = final_stop()
        return stop is not None and stamp_s(states[-1]) >= stamp_s(stop) + hold_s
    assert probe.wait_for(held, hold_s + 5.0), \
        f'{name}: still moving, or stopped publishing, {hold_s} s after the fault'
    states, first_zero = final_stop()
    assert first_zero.stale, f'{name}: stopped, but not by the watchdog: {first_zero.reason}'
    latency = stamp_s(first_zero) - fault.clock_s
    # The deadline assumes 20 Hz ticks; a hold-up of the navigator's process is added.
    held_up = held_up_s(probe.messages('vlm_nav/navigator_state'), first_zero,
                        1.0 / CONTROL_RATE_HZ, fault.clock_s)
    deadline = DEADLINE_S + held_up
    if held_up:
        print(f'{name}: the navigator was held up {held_up:.3f} s before the stop; deadline '
              f'{deadline:.3f} s')

    # The same on cmd_vel as this probe received it (includes DDS delivery and this
    # process's scheduling on a shared machine).
    received = [(t, m) for t, m in probe.timed('cmd_vel') if t > fault.monotonic]
    last = max((i for i, (_, m) in enumerate(received) if not _zero(m)), default=-1)
    assert last < len(received) - 1, f'{name}: cmd_vel still moving after the hold'
    delivered = received[last + 1][0] - fault.monotonic
    LATENCIES[name] = (latency, delivered)
    if latency > deadline:
        # From a little before the fault: a gap in the 20 Hz ticks there shows the
        # navigator held up (not the watchdog late), as a full-suite run once showed.
        before = [s for s in probe.messages('vlm_nav/navigator_state')
                  if fault.clock_s - 0.3 < stamp_s(s) <= fault.clock_s]
        print(f'{name}: states around the fault (s, linear, angular, phase: reason)')
        for s in before + states[:states.index(first_zero) + 2]:
            print(f'  {stamp_s(s) - fault.clock_s:6.3f} {s.linear_x:+.3f} {s.angular_z:+.3f} '
                  f'{s.phase}: {s.reason}')
    # Delivery gets slack for a loaded 2-core CI machine; publication does not.
    assert delivered <= deadline + 0.5, f'{name}: zero Twist received {delivered:.3f} s late'
    assert latency <= deadline, f'{name}: zero Twist published {latency:.3f} s after the fault'
    return latency


def wait_resumed(probe: Probe, since: float, timeout: float) -> None:
    def resumed():
        return (any(not _zero(m) for t, m in probe.timed('cmd_vel') if t > since) and
                any(not s.stale for t, s in probe.timed('vlm_nav/navigator_state')
                    if t > since))
    assert probe.wait_for(resumed, timeout), f'motion did not resume within {timeout} s'


class Fault:
    """When a fault was injected, on the probe's monotonic clock and on the ROS clock."""

    def __init__(self, probe: Probe):
        self.monotonic = time.monotonic()
        self.clock_s = probe.node.get_clock().now().nanoseconds * 1e-9


def kill(stack: Stack, probe: Probe, name: str, sig: int) -> Fault:
    """Send sig to a node's process; the fault time is taken just before the signal."""
    fault = Fault(probe)
    os.kill(stack.processes[name].pid, sig)
    if sig == signal.SIGKILL:
        stack.processes[name].wait(5.0)
    return fault


def check_twists(probe: Probe) -> None:
    twists = probe.messages('cmd_vel')
    assert twists
    for t in twists:
        values = (t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z)
        assert all(math.isfinite(v) for v in values), t
        assert abs(t.linear.x) <= MAX_LINEAR + 1e-9 and abs(t.angular.z) <= MAX_ANGULAR + 1e-9
        assert t.linear.y == t.linear.z == t.angular.x == t.angular.y == 0.0


class FrameSender:
    """Publishes test-pattern frames from the probe at the camera rate, stamped with an offset."""

    def __init__(self, probe: Probe, offset_s: float):
        self.probe, self.offset_s = probe, offset_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        index = 0
        while not self._stop.wait(1.0 / CAMERA_RATE_HZ):
            now_ns = self.probe.node.get_clock().now().nanoseconds + int(self.offset_s * 1e9)
            stamp = Image().header.stamp
            stamp.sec, stamp.nanosec = divmod(now_ns, 10 ** 9)
            self.probe.camera.publish(rgb_to_image(pattern_frame(index, 96, 96), stamp,
                                                   'camera'))
            index += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# ---- faults ----------------------------------------------------------------------------------
def test_timeout_leaves_room_for_normal_perception():
    # The budget the docstring derives; positive and at least an inference cycle.
    assert 0.2 <= PERCEPTION_TIMEOUT_S <= DEADLINE_S - 1.0 / CONTROL_RATE_HZ


def _garbage_answers_keep_it_stopped(watch: Probe) -> None:
    """
    Answer fresh frames with garbage, as a broken VLM would, while vlm_node is down.

    Garbage: NaN, probabilities that aren't, unknown labels, stamps from the future. None
    of it may move the robot.
    """
    answered = [0]

    def garbage(request, response):
        n = answered[0]
        answered[0] += 1
        o = response.observation
        o.target = request.target
        now_ns = watch.node.get_clock().now().nanoseconds
        future = n % 4 == 3
        o.header.stamp.sec, o.header.stamp.nanosec = divmod(
            now_ns + (5 * 10 ** 9 if future else 0), 10 ** 9)
        o.visible_prob = [float('nan'), 1.7, 0.9, 0.9][n % 4]
        o.bearing_labels = ['left', 'center', 'right'] if n % 4 != 2 else ['up', 'down']
        o.bearing_probs = [0.1, 0.8, 0.1] if n % 4 != 2 else [0.5, 0.5]
        o.distance_labels, o.distance_probs = ['near', 'far'], [0.1, 0.9]
        o.path_clear_prob = 1.0
        response.success = True
        return response
    service = watch.node.create_service(Observe, 'vlm_nav/observe', garbage)
    try:
        start = time.monotonic()
        assert watch.wait_for(lambda: answered[0] > 12, 10.0), 'navigator never asked'
        time.sleep(1.0)
        assert all(_zero(m) for t, m in watch.timed('cmd_vel') if t > start)
        # /diagnostics comes once a second: wait for one from after the garbage began
        assert watch.wait_for(lambda: watch.diagnostics(
            'navigator_node', since=start + 1.0) is not None, 10.0), 'no navigator diagnostics'
        diag = watch.diagnostics('navigator_node', since=start + 1.0)
        assert int(diag['invalid_observations']) > 0, diag
    finally:
        watch.node.destroy_service(service)


def test_vlm_killed_stops_within_deadline_and_garbage_answers_keep_it_stopped(stack, watch):
    wait_steady_motion(watch)
    fault = kill(stack, watch, 'vlm_node', signal.SIGKILL)
    try:
        measure_stop(watch, fault, 'vlm_node SIGKILL')
        _garbage_answers_keep_it_stopped(watch)
    finally:
        restarted = time.monotonic()
        stack.start_node(stack.spec['vlm_node'])     # the next tests need it, pass or fail
    wait_resumed(watch, restarted, timeout=90.0)
    check_twists(watch)


def test_vlm_hung_stops_within_deadline_and_resumes(stack, watch):
    wait_steady_motion(watch)
    fault = kill(stack, watch, 'vlm_node', signal.SIGSTOP)
    try:
        measure_stop(watch, fault, 'vlm_node SIGSTOP (hang)')
    finally:
        resumed = time.monotonic()
        os.kill(stack.processes['vlm_node'].pid, signal.SIGCONT)
    wait_resumed(watch, resumed, timeout=20.0)
    check_twists(watch)


@pytest.mark.parametrize('sig', [signal.SIGSTOP, signal.SIGKILL], ids=['SIGSTOP', 'SIGKILL'])
def test_camera_fault_stops_within_deadline_and_resumes(stack, watch, sig):
    wait_steady_motion(watch)
    fault = kill(stack, watch, 'camera_node', sig)
    try:
        measure_stop(watch, fault, f'camera_node {sig.name}')
    finally:
        repaired = time.monotonic()
        if sig == signal.SIGSTOP:
            os.kill(stack.processes['camera_node'].pid, signal.SIGCONT)
        else:
            stack.start_node(stack.spec['camera_node'])
    wait_resumed(watch, repaired, timeout=30.0)
    check_twists(watch)


@pytest.mark.parametrize('offset_s', [-2.0, 5.0], ids=['old-frames', 'future-frames'])
def test_answers_for_badly_stamped_frames_stop_within_deadline(stack, watch, offset_s):
    """
    Stop within the deadline when the VLM answers about old or future frames.

    Frames keep coming and the VLM keeps answering, but about old (lagging pipeline) or
    future (camera clock ahead) frames: the navigator must not act on them.
    """
    wait_steady_motion(watch)
    before = watch.diagnostics('vlm_node')
    fault = kill(stack, watch, 'camera_node', signal.SIGSTOP)
    sender = FrameSender(watch, offset_s)
    try:
        measure_stop(watch, fault, f'frames stamped {offset_s:+.0f} s', hold_s=2.5)
        # /diagnostics comes once a second, from a loaded machine: wait for one
        assert before is not None
        assert watch.wait_for(lambda: watch.diagnostics(
            'vlm_node', since=fault.monotonic + 1.5) is not None, 10.0), 'no vlm diagnostics'
        vlm = watch.diagnostics('vlm_node', since=fault.monotonic + 1.5)
        assert int(vlm['requests_ok']) > int(before['requests_ok']) + 5, \
            'the VLM should have kept answering'
        assert watch.wait_for(lambda: watch.diagnostics(
            'navigator_node', since=fault.monotonic + 1.5) is not None, 10.0)
        navigator = watch.diagnostics('navigator_node', since=fault.monotonic + 1.5)
        assert int(navigator['odometry_stalls']) >= 0, navigator
        if offset_s > 0:
            assert int(navigator['invalid_observations']) > 0, navigator
            assert 'future' in navigator['last_observe_error'], navigator
    finally:
        sender.stop()
        repaired = time.monotonic()
        os.kill(stack.processes['camera_node'].pid, signal.SIGCONT)
    wait_resumed(watch, repaired, timeout=20.0)
    check_twists(watch)


def test_stalled_describer_has_no_effect_on_the_navigator(stack, watch):
    # By construction: the navigator neither subscribes to descriptions nor calls Describe.
    node = watch.node
    assert watch.wait_for(lambda: 'navigator_node' in node.get_node_names(), 10.0)
    subscriptions = {n for n, _ in node.get_subscriber_names_and_types_by_node(
        'navigator_node', '/')}
    clients = {n for n, _ in node.get_client_names_and_types_by_node('navigator_node', '/')}
    assert not {n for n in subscriptions | clients if 'scene_description' in n or
                'describe' in n}, (subscriptions, clients)
    # And in fact: stall it (it may hang mid-call) and the robot drives on.
    wait_steady_motion(watch)
    fault = kill(stack, watch, 'scene_describer_node', signal.SIGSTOP)
    try:
        # Three seconds of the navigator's own ticks (by their stamps, so this probe being
        # late to receive them does not count), each state carrying its Twist's values.
        assert watch.wait_for(lambda: any(
            stamp_s(s) > fault.clock_s + 3.0
            for s in watch.messages('vlm_nav/navigator_state')), 10.0), 'navigator silent'
        states = [s for s in watch.messages('vlm_nav/navigator_state')
                  if fault.clock_s < stamp_s(s) <= fault.clock_s + 3.0]
        assert len(states) >= 30, len(states)      # 20 Hz for 3 s, with slack for load
        stale = sum(s.stale for s in states) / len(states)
        moving = sum(s.linear_x != 0.0 or s.angular_z != 0.0 for s in states) / len(states)
        # Longest stretch of stale ticks: a navigator that waited on the describer would be
        # stale from 0.3 s after the stall to the end (2.7 s); on a loaded machine slow
        # answers make short stretches (up to 28 % of ticks, beside two busy loops).
        longest, since = 0.0, None
        for s in states:
            since = (since if since is not None else stamp_s(s)) if s.stale else None
            longest = max(longest, stamp_s(s) - since if since is not None else 0.0)
        print(f'describer stalled 3 s: {stale:.0%} of ticks stale (longest {longest:.2f} s), '
              f'{moving:.0%} moving')
        assert longest < 1.0 and moving >= 0.5, (longest, stale, moving)
    finally:
        os.kill(stack.processes['scene_describer_node'].pid, signal.SIGCONT)
    check_twists(watch)


def test_every_twist_of_the_module_was_finite_and_within_limits(watch):
    check_twists(watch)
    assert len(watch.messages('cmd_vel')) > 100


def test_recorder_wrote_the_run(stack, watch):
    """The recorder ran beside the faults; its bag holds every topic, custom types included."""
    recorder = stack.processes['recorder']
    recorder.send_signal(signal.SIGINT)
    assert recorder.wait(10.0) == 0
    counts: Dict[str, int] = {}
    stale: List[bool] = []
    with AnyReader([stack.bag]) as reader:
        for connection, _, raw in reader.messages():
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
            if connection.topic == '/vlm_nav/navigator_state':
                stale.append(deserialize_message(bytes(raw), NavigatorState).stale)
                # rosbags can read it too: the stored definition matches the bytes
                assert reader.deserialize(raw, connection.msgtype).mode == 'search'
    for topic in ('/camera/image_raw', '/scene_description', '/scene_description/structured',
                  '/vlm_nav/navigator_state', '/cmd_vel'):
        assert counts.get(topic, 0) > 0, (topic, counts)
    assert any(stale) and not all(stale), 'the faults should show in the recorded states'
    print('recorded:', json.dumps(counts))
