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
A served model whose server misbehaves, through real nodes: the robot never moves on it.

sim_node, vlm_node and navigator_node (exploring) run as `vlm-nav bringup` starts them;
vlm_node's model is served by test/served_fixtures.FakeServer on 127.0.0.1, which
forwards to a real `transformers serve` (the embedded model) when good and misbehaves on
demand. The server is absent when the robot starts, then answers HTML, then is good: the
node becomes ready by itself. Then, from a standing start each time, the server sends
JSON without choices, text sent as JSON, hangs, drops the connection, or is slower than
the timeout: not one moving Twist, vlm_node ERROR on /diagnostics naming the server and
what came back, the navigator's stop reason naming the server; then the good server
returns: OK again, the error cleared, and the robot moves.
"""

import time
from typing import List

from conftest import Probe, running_stack
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
import pytest
from served_fixtures import FakeServer

from vlm_nav.bench.served import free_port, local_server
from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav_interfaces.msg import NavigatorState
from vlm_nav_interfaces.srv import SetTarget

pytestmark = pytest.mark.ros

# One try of 2 s: a hung server fails each request in 2 s, under inference_timeout_s.
SPEC_OPTIONS = {'model': str(EMBEDDED_MODEL_DIR), 'timeout': 2, 'retries': 0}
MOVING: List[str] = []            # moving Twists seen while the server misbehaved, per case


@pytest.fixture(scope='module')
def upstream(tmp_path_factory):
    log = tmp_path_factory.mktemp('serve') / 'server.log'
    with local_server(str(EMBEDDED_MODEL_DIR), threads=1, log_path=str(log)) as spec:
        yield spec.split('?')[0].replace('openai://', 'http://')


class Robot:
    """The running stack, the probe watching it, and the server once it is up."""

    def __init__(self, stack, probe: Probe, port: int):
        self.stack, self.probe, self.port = stack, probe, port
        self.fake = None


@pytest.fixture(scope='module')
def robot(ros_domain, upstream, tmp_path_factory):
    """Start the robot with no server at its model's address."""
    port = free_port()
    spec = (f'openai://127.0.0.1:{port}/v1?'
            + '&'.join(f'{k}={v}' for k, v in SPEC_OPTIONS.items()))
    specs = [
        NodeSpec('sim_node', 'sim_node', {'seed': 3}),
        NodeSpec('vlm_node', 'vlm_node', {'model': spec, 'server_retry_max_s': 1.0}),
        NodeSpec('navigator_node', 'navigator_node', {'mode': 'explore'}),
    ]
    probe = Probe('served_fault_probe')
    probe.record(Twist, 'cmd_vel')
    probe.record(NavigatorState, 'vlm_nav/navigator_state')
    probe.record(DiagnosticArray, '/diagnostics')
    running = None
    try:
        with running_stack(specs, tmp_path_factory.mktemp('logs')) as stack:
            running = Robot(stack, probe, port)
            yield running
    finally:
        if running is not None and running.fake is not None:
            running.fake.close()
        probe.close()
        print('moving Twists while the server misbehaved:', '; '.join(MOVING))


def _moving(twists) -> int:
    return sum(t.linear.x != 0.0 or t.angular.z != 0.0 for t in twists)


def _twists_since(probe: Probe, since: float) -> List[Twist]:
    return [m for t, m in probe.timed('cmd_vel') if t >= since]


def _vlm(probe: Probe, since: float = 0.0) -> dict:
    return probe.diagnostics('vlm_node', since) or {}


def _set_mode(probe: Probe, mode: str) -> None:
    reply = probe.call(SetTarget, 'vlm_nav/set_target', SetTarget.Request(mode=mode))
    assert reply.success, reply.message


def _wait_moving(probe: Probe, since: float, timeout: float = 45.0) -> None:
    def moving():
        twists = _twists_since(probe, since)[-10:]
        return len(twists) == 10 and _moving(twists) == 10
    assert probe.wait_for(moving, timeout), (
        'the robot did not move again', _vlm(probe).get('_message'),
        probe.messages('vlm_nav/navigator_state')[-1:])


def _wait_ok(probe: Probe, since: float, timeout: float = 30.0) -> dict:
    assert probe.wait_for(lambda: _vlm(probe, since).get('_level') == DiagnosticStatus.OK,
                          timeout), _vlm(probe)
    values = _vlm(probe, since)
    assert values['_message'] == 'ready' and values['server_last_error'] == ''
    assert values['server_state'] == 'ok'
    return values


def _error_shown(probe: Probe, text: str, since: float = 0.0) -> bool:
    values = _vlm(probe, since)
    return values.get('_level') == DiagnosticStatus.ERROR and text in values['_message']


def test_a_robot_started_before_its_server_becomes_ready_when_it_answers(robot, upstream):
    probe, where = robot.probe, f'127.0.0.1:{robot.port}/v1'
    started = time.monotonic()
    assert probe.wait_for(lambda: _error_shown(probe, 'cannot reach the model server'), 60.0), \
        _vlm(probe)
    assert where in _vlm(probe)['_message']
    assert probe.wait_for(lambda: where in (
        probe.messages('vlm_nav/navigator_state') or [NavigatorState()])[-1].reason, 20.0)
    # The server comes up answering HTML to chat requests: still not ready, and why.
    robot.fake = FakeServer(mode='html', port=robot.port, upstream=upstream)
    assert probe.wait_for(lambda: _error_shown(probe, 'text/html'), 20.0), _vlm(probe)
    assert 'POST /chat/completions' in _vlm(probe)['_message']
    twists = _twists_since(probe, started)
    MOVING.append(f'no server, then HTML at start: {_moving(twists)} of {len(twists)}')
    assert twists and _moving(twists) == 0
    # A good server: ready by itself, and the robot moves.
    robot.fake.mode = 'proxy'
    recovered = time.monotonic()
    values = _wait_ok(probe, recovered)
    assert int(values['model_load_attempts']) >= 3
    assert values['scoring'].startswith('generate-and-match')
    _wait_moving(probe, recovered)


# mode, what vlm_node's ERROR message shows, kind counted, how long the robot stays still
CASES = [
    ('no_choices', 'no "choices"', 'not_completion', 4.0),
    ('not_json', "'upstream said: everything is fine'", 'not_completion', 4.0),
    ('hang', 'did not answer POST /chat/completions within 2 s', 'timeout', 6.0),
    ('drop', 'closed the connection without answering', 'dropped', 4.0),
    ('slow', 'did not answer POST /chat/completions within 2 s', 'timeout', 6.0),
]


@pytest.mark.parametrize('mode, shown, kind, hold_s', CASES, ids=[c[0] for c in CASES])
def test_no_motion_on_a_misbehaving_server_and_recovery(robot, mode, shown, kind, hold_s):
    if robot.fake is None:
        pytest.skip('the server never came up')
    probe, fake = robot.probe, robot.fake
    before = int(_vlm(probe).get(f'server_failed_{kind}', 0))
    fake.mode = mode
    _set_mode(probe, 'idle')
    time.sleep(0.5)             # frames the good server answered are no longer the newest
    started = time.monotonic()
    _set_mode(probe, 'explore')
    assert probe.wait_for(lambda: _error_shown(probe, shown, started), 20.0), _vlm(probe)
    values = _vlm(probe, started)
    assert fake.base_url in values['_message'], values['_message']
    assert values['server_last_error'] in values['_message']
    assert int(values[f'server_failed_{kind}']) > before

    def reason_names_server():
        states = [s for t, s in probe.timed('vlm_nav/navigator_state') if t >= started]
        return states and states[-1].stale and fake.base_url in states[-1].reason
    assert probe.wait_for(reason_names_server, 20.0), \
        probe.messages('vlm_nav/navigator_state')[-1:]
    time.sleep(max(0.0, started + hold_s - time.monotonic()))
    twists = _twists_since(probe, started)
    MOVING.append(f'{mode}: {_moving(twists)} of {len(twists)}')
    assert twists and _moving(twists) == 0, f'{_moving(twists)} of {len(twists)} moved'
    states = [s for t, s in probe.timed('vlm_nav/navigator_state') if t >= started]
    assert all(s.linear_x == 0.0 and s.angular_z == 0.0 for s in states)
    assert not any('model busy' in s.reason for s in states)
    # The good server returns: OK, the error cleared, the robot moves.
    fake.mode = 'proxy'
    recovered = time.monotonic()
    _wait_ok(probe, recovered)
    _wait_moving(probe, recovered)
