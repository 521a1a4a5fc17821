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
monitor_node as a real process over DDS, checked against the simulator's ground truth.

With the simulator, the embedded model in vlm_node and the shipped scenarios.

Layout seed 4 000 007 (held out: training used 0..5 999) puts the robot's start facing a
door 847 pixels large; a blue ball and a yellow box are in the room but out of view, and
there is no red ball. The robot is turned away and back with cmd_vel to end an event and
start a second one.
"""

import json
import math
from pathlib import Path
import subprocess
import sys
import time

from conftest import REPO, running_stack
import cv2
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist, Vector3
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from std_msgs.msg import String

from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.monitor.scenarios import load_scenarios
from vlm_nav.ros.image import image_to_rgb
from vlm_nav_interfaces.msg import Alert
import yaml

pytestmark = pytest.mark.ros

SEED = 4_000_007
PERIOD_S = 0.5
SHIPPED = REPO / 'config' / 'monitor_scenarios.yaml'


def _scenario_file(tmp_path: Path) -> Path:
    """Write the shipped simulator scenarios, a hard negative and a door without cooldown."""
    entries = yaml.safe_load(SHIPPED.read_text())['scenarios']
    shipped = {e['id']: e for e in entries}
    assert {s.id for s in load_scenarios(str(SHIPPED))} >= set(shipped)
    door = shipped['door_in_view']
    chosen = [door, shipped['red_ball_in_view'], shipped['path_blocked'],
              dict(shipped['red_ball_in_view'], id='blue_ball_in_view',
                   question='Is there a blue ball?'),
              dict(door, id='door_rearm', cooldown_s=0)]
    assert door['cooldown_s'] >= 30              # the second event must fall inside it
    path = tmp_path / 'scenarios.yaml'
    path.write_text(yaml.safe_dump({'scenarios': chosen}))
    return path


@pytest.fixture(scope='module')
def sim_monitor(ros_domain, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('monitor')
    alert_dir = tmp / 'alerts'
    specs = [
        NodeSpec('sim_node', 'sim_node', {'seed': SEED}),
        NodeSpec('vlm_node', 'vlm_node', {'model': ''}),
        NodeSpec('monitor_node', 'monitor_node', {
            'scenario_file': str(_scenario_file(tmp)), 'alert_dir': str(alert_dir),
            'check_period_s': PERIOD_S}),
    ]
    with running_stack(specs, tmp) as running:
        yield running, alert_dir


def _truth(probe):
    return json.loads(probe.messages('sim/ground_truth')[-1].data)


def _monitor(probe, since=0.0):
    return probe.diagnostics('monitor_node', since)


def _turn(probe, publisher, speed, until, timeout=20.0):
    """
    Publish cmd_vel at 10 Hz until until(truth) holds; then stop.

    Every ground truth received since the last look is tested, not only the newest: at
    1 rad/s and 10 Hz truth a narrow yaw window holds for one message, which a late look
    would miss (and the turn would go round again).
    """
    deadline = time.monotonic() + timeout
    seen = len(probe.messages('sim/ground_truth')) - 1
    try:
        while time.monotonic() < deadline:
            received = probe.messages('sim/ground_truth')
            if any(until(json.loads(m.data)) for m in received[seen:]):
                return True
            seen = len(received)
            publisher.publish(Twist(angular=Vector3(z=speed)))
            time.sleep(0.1)
        return False
    finally:
        for _ in range(3):
            publisher.publish(Twist())
            time.sleep(0.05)


def _wrap(a):
    return (a + math.pi) % (2 * math.pi) - math.pi


def test_alert_for_what_is_in_view_once_per_event(sim_monitor, probe):
    stack, alert_dir = sim_monitor
    probe.record(Alert, 'vlm_nav/alerts')
    probe.record(String, 'sim/ground_truth')
    probe.record(DiagnosticArray, '/diagnostics')
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    cmd_vel = probe.node.create_publisher(Twist, 'cmd_vel', 10)

    assert probe.wait_for(lambda: probe.messages('sim/ground_truth'), 20.0)
    truth = {o['label']: o for o in _truth(probe)['objects']}
    assert truth['door']['visible'] and truth['door']['pixel_count'] > 500
    assert not truth['blue ball']['visible'] and 'red ball' not in truth
    assert _truth(probe)['path_clear']

    # The door is in view: one alert per door scenario, whatever the number of checks.
    assert probe.wait_for(
        lambda: {a.scenario_id for a in probe.messages('vlm_nav/alerts')} >=
        {'door_in_view', 'door_rearm'}, 60.0), (stack.dead(), _monitor(probe))
    started = time.monotonic()
    assert probe.wait_for(lambda: int((_monitor(probe, started) or {})
                                      .get('checks_done', 0)) >= 8, 30.0)
    values = _monitor(probe)
    alerts = probe.messages('vlm_nav/alerts')
    assert sorted(a.scenario_id for a in alerts) == ['door_in_view', 'door_rearm'], values
    assert values['in_event'] == 'door_in_view,door_rearm', values
    # (Asks fail while vlm_node loads its model; once it answers, none does.)
    assert values['last_check_ok'] == 'True' and int(values['checks_failed']) == 0, values
    # and the scenarios not in view stayed quiet, with low confidence
    for absent in ('red_ball_in_view', 'blue_ball_in_view', 'path_blocked'):
        assert float(values[f'p_{absent}']) < 0.5, values

    door = next(a for a in alerts if a.scenario_id == 'door_in_view')
    assert door.confidence >= door.threshold == pytest.approx(0.8)
    assert list(door.choices) == ['yes', 'no'] and list(door.alarm_choices) == ['yes']
    assert door.consecutive_hits >= 2 and door.severity == 'info'
    assert door.header.frame_id == 'camera' and door.model_name

    # The log: one JSON line per alert; the saved frame is the very frame the model saw.
    lines = (alert_dir / 'alerts.jsonl').read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert sorted(r['scenario'] for r in records) == ['door_in_view', 'door_rearm']
    record = next(r for r in records if r['scenario'] == 'door_in_view')
    stamp = door.header.stamp.sec + door.header.stamp.nanosec * 1e-9
    assert record['frame_stamp'] == pytest.approx(stamp, abs=1e-6)
    assert record['confidence'] == pytest.approx(door.confidence, abs=1e-4)
    assert record['scores']['yes'] >= 0.8 and record['model'] == door.model_name
    saved = alert_dir / record['frame']
    assert saved.is_file() and str(saved) == door.frame_path
    pixels = cv2.cvtColor(cv2.imread(str(saved)), cv2.COLOR_BGR2RGB)
    sent = [m for m in probe.messages('camera/image_raw') if m.header.stamp == door.header.stamp]
    if sent:   # the probe may have joined after that frame
        assert np.array_equal(pixels, image_to_rgb(sent[0]))
    assert pixels.shape == (96, 96, 3)

    # Turn away: the door leaves the view and both door events end.
    yaw0 = _truth(probe)['robot']['yaw']

    def door_visible(t):
        return next(o for o in t['objects'] if o['label'] == 'door')['visible']

    assert _turn(probe, cmd_vel, 1.0,
                 lambda t: abs(_wrap(t['robot']['yaw'] - yaw0)) > 2.6 and not door_visible(t))
    assert probe.wait_for(lambda: int(_monitor(probe)['events_ended']) >= 2, 20.0), \
        _monitor(probe)
    assert _monitor(probe)['in_event'] == ''

    # Turn back: a new event. door_rearm (no cooldown) alerts again; door_in_view is
    # still inside its 30 s cooldown and holds the event back.
    # (Slower back: the turn overshoots by the time a stop takes to reach the robot.)
    assert _turn(probe, cmd_vel, -0.5,
                 lambda t: abs(_wrap(t['robot']['yaw'] - yaw0)) < 0.05, timeout=30.0)
    assert door_visible(_truth(probe))
    assert probe.wait_for(
        lambda: [a.scenario_id for a in probe.messages('vlm_nav/alerts')].count(
            'door_rearm') == 2, 20.0), _monitor(probe)
    assert probe.wait_for(lambda: int(_monitor(probe)['held_by_cooldown']) >= 1, 10.0)
    # An alert is logged before it is published: wait until the probe has every alert
    # the monitor counted (a ball alert of the sweep may be in flight).
    assert probe.wait_for(lambda: len(probe.messages('vlm_nav/alerts')) ==
                          int(probe.next_diagnostics('monitor_node')['alerts']), 15.0), \
        _monitor(probe)
    published = [a.scenario_id for a in probe.messages('vlm_nav/alerts')]
    assert published.count('door_in_view') == 1
    # The turn sweeps the room: the blue ball may come into view for two checks and
    # alert rightly. Any alert besides the door's must be one the ground truth backs.
    ball_seen = any(next(o for o in json.loads(m.data)['objects']
                         if o['label'] == 'blue ball')['visible']
                    for m in probe.messages('sim/ground_truth'))
    others = {s for s in published if not s.startswith('door')}
    assert others <= ({'blue_ball_in_view'} if ball_seen else set()), (others, ball_seen)
    # One log line and one saved frame per alert, none lost or doubled.
    logged = [json.loads(line)['scenario']
              for line in (alert_dir / 'alerts.jsonl').read_text().splitlines()]
    assert sorted(logged) == sorted(published)
    assert [s for s in logged if s.startswith('door')].count('door_rearm') == 2
    assert len(list((alert_dir / 'frames').glob('*.png'))) == len(logged)
    assert not stack.dead()


def _start_monitor(tmp_path, *params, timeout=30.0):
    command = [sys.executable, '-m', 'vlm_nav.monitor_node', '--ros-args']
    for param in params:
        command += ['-p', param]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          cwd=tmp_path)


def test_bad_scenario_file_stops_the_node_naming_the_entry(ros_domain, tmp_path):
    bad = tmp_path / 'bad.yaml'
    bad.write_text('scenarios:\n  - id: door\n    question: Is there a door?\n'
                   '  - id: fire\n    question: Is there fire?\n    treshold: 0.5\n')
    result = _start_monitor(tmp_path, f'scenario_file:={bad}')
    assert result.returncode == 1, result.stdout + result.stderr
    output = result.stdout + result.stderr
    assert "scenario #2 (id 'fire'): unknown key(s) ['treshold']" in output, output
    assert str(bad) in output


def test_unknown_scenario_id_or_unwritable_alert_dir_stops_the_node(ros_domain, tmp_path):
    result = _start_monitor(tmp_path, 'scenarios:=door_in_view,dragon')
    assert result.returncode == 1
    assert "unknown scenario id(s) ['dragon']" in result.stdout + result.stderr
    blocker = tmp_path / 'a_file'
    blocker.write_text('')
    result = _start_monitor(tmp_path, f'alert_dir:={blocker / "alerts"}')
    assert result.returncode == 1
    assert 'is not writable' in result.stdout + result.stderr
