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
A profile's nodes composed in one process (one executor).

The sim profile still closes the loop, and a replay feeds the model from a bag.
"""

import os
from pathlib import Path
import signal
import subprocess
import sys

from nav_msgs.msg import Odometry
import pytest
from std_msgs.msg import String

from vlm_nav.bringup.composed import NODE_CLASSES
from vlm_nav.bringup.profiles import PROFILE_ARGUMENTS, profile_nodes
from vlm_nav_interfaces.msg import NavigatorState

pytestmark = pytest.mark.ros

BAG = Path(__file__).resolve().parents[1] / 'data' / 'sim_turn'


@pytest.mark.parametrize('profile', sorted(PROFILE_ARGUMENTS))
def test_every_profile_node_can_be_composed(profile):
    specs = profile_nodes(profile, bag='bag', record='out', monitor=True)
    assert {s.executable for s in specs} <= set(NODE_CLASSES), profile


def _composed(args, log_path):
    log = open(log_path, 'w')
    return subprocess.Popen([sys.executable, '-m', 'vlm_nav.bringup.composed'] + args, stdout=log,
                            stderr=subprocess.STDOUT, env=dict(os.environ))


def _stop(process):
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()


def test_composed_sim_stack_decides_and_drives(ros_domain, probe, tiny_llava_dir, tmp_path):
    probe.record(NavigatorState, 'vlm_nav/navigator_state')
    probe.record(Odometry, 'odom')
    process = _composed(['sim', '--model', tiny_llava_dir, '--seed', '5', '--target', 'red ball'],
                        tmp_path / 'composed.log')
    try:
        def deciding():
            states = probe.messages('vlm_nav/navigator_state')
            return any(s.mode == 'search' and not s.stale and s.phase != 'idle' for s in states)
        ok = probe.wait_for(deciding, 90.0)
        assert ok, (tmp_path / 'composed.log').read_text()[-3000:]
        assert probe.wait_for(lambda: probe.messages('odom'), 10.0), \
            'sim_node in the same process publishes odometry'
    finally:
        _stop(process)


def test_composed_replay_describes_the_bag(ros_domain, probe, tiny_llava_dir, tmp_path):
    """
    Describe a bag's frames with the bag player composed beside the model.

    The bag player plays on its own thread, so it composes with the other nodes: its
    frames reach the model in the same process and descriptions come out.
    """
    probe.record(String, 'scene_description')
    process = _composed(['replay', '--model', tiny_llava_dir, '--bag', str(BAG)],
                        tmp_path / 'composed.log')
    try:
        ok = probe.wait_for(lambda: probe.messages('scene_description'), 60.0)
        assert ok, (tmp_path / 'composed.log').read_text()[-3000:]
    finally:
        _stop(process)
