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
ros_session: a node's main() ends cleanly when a signal shuts rclpy down.

However the shutdown reaches it; real errors still fail. Real rclpy, the default context.
"""

import subprocess
import sys

import pytest
import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import SingleThreadedExecutor

from vlm_nav.bringup.supervisor import Stack
from vlm_nav.ros.session import ros_session

pytestmark = pytest.mark.ros


def test_an_executor_racing_the_shutdown_ends_the_session_quietly():
    # rclpy's signal handler shuts the context down while the executor may be between its
    # ok() check and building the wait set; the real executor then raises RCLError.
    with ros_session(args=[]):
        node = rclpy.create_node('session_probe')
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        rclpy.shutdown()
        with pytest.raises(RCLError, match='context is not valid'):
            executor.spin_once(timeout_sec=0.0)
        executor.spin_once(timeout_sec=0.0)      # the same, uncaught: the session ends
        raise AssertionError('not reached')
    assert not rclpy.ok()


def test_keyboard_interrupt_ends_the_session_and_shuts_rclpy_down():
    with ros_session(args=[]):
        assert rclpy.ok()
        raise KeyboardInterrupt
    assert not rclpy.ok()


def test_an_rcl_error_while_rclpy_runs_is_a_failure():
    with pytest.raises(RCLError, match='real failure'):
        with ros_session(args=[]):
            raise RCLError('real failure')
    assert not rclpy.ok()


def test_stack_stop_escalates_sigint_sigterm_sigkill(tmp_path):
    """
    Send a node still running after SIGINT SIGTERM, then SIGKILL (as ros2 launch does).

    Not SIGKILL at once: a recorder finishing a bag gets a second chance.
    """
    mark = tmp_path / 'terminated'
    ignores_sigint = (
        'import pathlib, signal, sys, time\n'
        'signal.signal(signal.SIGINT, signal.SIG_IGN)\n'
        f'signal.signal(signal.SIGTERM, lambda *a: (pathlib.Path({str(mark)!r}).touch(), '
        'sys.exit(0)))\n'
        'print("ready", flush=True)\n'
        'time.sleep(60)\n')
    ignores_both = ('import signal, time\n'
                    'signal.signal(signal.SIGINT, signal.SIG_IGN)\n'
                    'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
                    'print("ready", flush=True)\n'
                    'time.sleep(60)\n')
    stack = Stack([], params_file='', echo=False)
    for name, code in (('stubborn', ignores_sigint), ('deaf', ignores_both)):
        process = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE,
                                   text=True)
        assert process.stdout.readline() == 'ready\n'      # its handlers are installed
        stack.processes[name] = process
    stack.stop(timeout=1.0)
    assert mark.exists(), 'SIGTERM was not sent'
    assert stack.processes['stubborn'].returncode == 0
    assert stack.processes['deaf'].returncode == -9
