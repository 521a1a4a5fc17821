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
monitor_node on a recorded bag, checked against the bag's ground truth.

bag_player_node replays test/data/sim_turn (layout seed 2, the robot turning in place, 25
frames at 2 Hz) to vlm_node (embedded model) and the monitor, which checks every frame.
Ground truth from the bag: the blue ball is in view in frames 0-8 and again in 22-24, the
green chair in 12-15; there is no yellow ball in the room.
"""

import time

from builtin_interfaces.msg import Time
from conftest import REPO, running_stack
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.cli import evaluate_bag
from vlm_nav.ros.image import rgb_to_image
from vlm_nav_interfaces.msg import Alert
from vlm_nav_interfaces.srv import Ask
import yaml

pytestmark = pytest.mark.ros

BAG = REPO / 'test' / 'data' / 'sim_turn'


def _visible_runs(label):
    """Frame indices where the label is visible, from the bag's ground truth."""
    frames = evaluate_bag.read_labelled_frames(str(BAG))
    return [i for i, f in enumerate(frames)
            if any(o['label'] == label and o['visible'] for o in f.truth['objects'])]


def test_monitor_on_a_replayed_bag(ros_domain, probe, tmp_path):
    assert _visible_runs('blue ball') == [0, 1, 2, 3, 4, 5, 6, 7, 8, 22, 23, 24]
    assert _visible_runs('green chair') == [12, 13, 14, 15]
    assert _visible_runs('yellow ball') == []
    # No debounce (test_monitor_node covers it): under load the monitor may check only
    # every other frame, and the ball's second appearance is three frames long.
    common = {'threshold': 0.8, 'clear_threshold': 0.5, 'min_consecutive': 1,
              'clear_consecutive': 2, 'cooldown_s': 0}
    scenarios = tmp_path / 'scenarios.yaml'
    scenarios.write_text(yaml.safe_dump({'scenarios': [
        dict(common, id='blue_ball', question='Is there a blue ball?'),
        dict(common, id='green_chair', question='Is there a green chair?'),
        dict(common, id='yellow_ball', question='Is there a yellow ball?')]}))
    monitor = NodeSpec('monitor_node', 'monitor_node', {
        'scenario_file': str(scenarios), 'alert_dir': str(tmp_path / 'alerts'),
        'check_every_n_frames': 1})
    player = NodeSpec('bag_player_node', 'bag_player_node', {'bag': str(BAG)})
    probe.record(Alert, 'vlm_nav/alerts')
    probe.record(DiagnosticArray, '/diagnostics')
    with running_stack([NodeSpec('vlm_node', 'vlm_node', {'model': ''}), monitor],
                       tmp_path) as stack:
        # Replay once the model answers (it loads in seconds to tens of seconds here).
        image = rgb_to_image(np.zeros((96, 96, 3), np.uint8), Time(), 'camera')
        deadline = time.monotonic() + 60.0
        while not probe.call(Ask, 'vlm_nav/ask', Ask.Request(
                question='Is there a door?', choices=['yes', 'no'], image=image)).success:
            assert time.monotonic() < deadline, 'vlm_node never became ready'
            time.sleep(0.5)
        stack.start_node(player)
        probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
        player_log = tmp_path / 'bag_player_node.log'
        assert probe.wait_for(lambda: player_log.is_file()       # written from its 1st line
                              and 'replay finished' in player_log.read_text(), 40.0)
        # The last checks finish after the replay does (a check is three questions, over a
        # second on a loaded machine): wait until the monitor is idle, then until every
        # alert it counts has reached this probe (it logs an alert before publishing it).
        previous = probe.next_diagnostics('monitor_node', 10.0)
        for _ in range(30):
            values = probe.next_diagnostics('monitor_node', 10.0)
            idle = int(values['checks_started']) == \
                int(values['checks_done']) + int(values['checks_failed'])
            if idle and values['checks_started'] == previous['checks_started']:
                break
            previous = values
        else:
            raise AssertionError(f'monitor still checking 30 s after the replay: {values}')
        assert probe.wait_for(lambda: len(probe.messages('vlm_nav/alerts')) ==
                              int(values['alerts']), 10.0), values
        alerts = [a.scenario_id for a in probe.messages('vlm_nav/alerts')]
        assert not [n for n in stack.dead() if n != 'bag_player_node'], stack.dead()
    print('alerts', alerts, values)
    # Two blue-ball events (frames 0-8 and 22-24), one green-chair event, nothing else.
    assert alerts.count('blue_ball') == 2, (alerts, values)
    assert alerts.count('green_chair') == 1, (alerts, values)
    assert 'yellow_ball' not in alerts
    assert int(values['checks_done']) >= 8 and values['last_check_ok'] == 'True', values
    lines = (tmp_path / 'alerts' / 'alerts.jsonl').read_text().splitlines()
    assert len(lines) == len(alerts) == len(list((tmp_path / 'alerts' / 'frames').glob('*')))
