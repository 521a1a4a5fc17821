"""All nodes of the sim profile composed in one process (one executor) still close the loop."""

import os
import signal
import subprocess
import sys

from nav_msgs.msg import Odometry
import pytest
from vlm_nav_interfaces.msg import NavigatorState

pytestmark = pytest.mark.ros


def test_composed_sim_stack_decides_and_drives(ros_domain, probe, tiny_llava_dir, tmp_path):
    probe.record(NavigatorState, 'vlm_nav/navigator_state')
    probe.record(Odometry, 'odom')
    log = open(tmp_path / 'composed.log', 'w')
    process = subprocess.Popen(
        [sys.executable, '-m', 'vlm_nav.composed', 'sim', '--model', tiny_llava_dir,
         '--seed', '5', '--target', 'red ball'], stdout=log, stderr=subprocess.STDOUT,
        env=dict(os.environ))
    try:
        def deciding():
            states = probe.messages('vlm_nav/navigator_state')
            return any(s.mode == 'search' and not s.stale and s.phase != 'idle' for s in states)
        ok = probe.wait_for(deciding, 90.0)
        assert ok, (tmp_path / 'composed.log').read_text()[-3000:]
        assert probe.messages('odom'), 'sim_node in the same process publishes odometry'
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
