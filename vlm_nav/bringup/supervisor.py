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
Start a profile's nodes as processes with the shared YAML: `ros2 launch` for the pip path.

`launch`/`launch_ros` are not installable without a ROS distro, so this does the part of
them vlm_nav needs: one process per node, --params-file plus overrides, prefixed output,
SIGINT to all on exit, then SIGTERM and SIGKILL to what is left.
"""

from collections import deque
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Deque, Dict, List, Optional, Sequence

from vlm_nav.bringup.profiles import NodeSpec


def ros_value(value: object) -> str:
    """Format a parameter override as `-p name:=value` wants it (YAML syntax)."""
    if isinstance(value, bool):
        return 'true' if value else 'false'
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (list, tuple)):
        return '[' + ', '.join(ros_value(v) for v in value) + ']'
    return repr(value)


TAIL_LINES = 50     # lines of each node's output kept (Stack.tails)

# executable -> its module, where that is not vlm_nav.<executable> (setup.py's console_scripts)
MODULES = {'oracle_node': 'vlm_nav.bench.oracle_node'}


def node_module(executable: str) -> str:
    """Return the module whose main() an executable runs."""
    return MODULES.get(executable, f'vlm_nav.{executable}')


def node_command(spec: NodeSpec, params_file: str, extra: Sequence[str] = ()) -> List[str]:
    command = [sys.executable, '-m', node_module(spec.executable), '--ros-args',
               '-r', f'__node:={spec.name}', '--params-file', params_file]
    for name, value in spec.parameters.items():
        command += ['-p', f'{name}:={ros_value(value)}']
    return command + list(extra)


class Stack:
    """The processes of one bringup; a context manager that always stops them."""

    def __init__(self, specs: Sequence[NodeSpec], params_file: str,
                 env: Optional[Dict[str, str]] = None, echo: bool = True,
                 log_dir: Optional[str] = None):
        self.specs, self.params_file = list(specs), params_file
        self.env = dict(os.environ, **(env or {}), PYTHONUNBUFFERED='1')
        self.echo, self.log_dir = echo, log_dir
        self.processes: Dict[str, subprocess.Popen] = {}
        # each node's last lines of output: why a node that exited failed
        self.tails: Dict[str, Deque[str]] = {}
        self._threads: List[threading.Thread] = []
        self._pumps: Dict[str, threading.Thread] = {}

    def start(self) -> 'Stack':
        for spec in self.specs:
            self.start_node(spec)
        return self

    def start_node(self, spec: NodeSpec) -> subprocess.Popen:
        process = subprocess.Popen(node_command(spec, self.params_file), env=self.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   errors='replace')
        self.processes[spec.name] = process
        thread = threading.Thread(target=self._pump, args=(spec.name, process), daemon=True)
        thread.start()
        self._threads.append(thread)
        self._pumps[spec.name] = thread
        return process

    def _pump(self, name: str, process: subprocess.Popen) -> None:
        log = open(os.path.join(self.log_dir, f'{name}.log'), 'a') if self.log_dir else None
        tail = self.tails.setdefault(name, deque(maxlen=TAIL_LINES))
        for line in process.stdout:
            tail.append(line.rstrip('\n'))
            if self.echo:
                sys.stdout.write(f'[{name}] {line}')
                sys.stdout.flush()
            if log:
                log.write(line)
                log.flush()
        if log:
            log.close()

    def stop(self, timeout: float = 5.0) -> None:
        """
        Stop the nodes: SIGINT to each, then SIGTERM and SIGKILL to those still running.

        SIGTERM goes to the nodes still running after timeout, SIGKILL to those still
        running after another (ros2 launch's escalation: a recorder finishing its bag gets
        both).
        """
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            running = {n: p for n, p in self.processes.items() if p.poll() is None}
            if not running:
                return
            if sig != signal.SIGINT:
                print(f'[bringup] {sorted(running)} still running {timeout:.0f} s after '
                      f'{"SIGINT" if sig == signal.SIGTERM else "SIGTERM"}: '
                      f'sending {sig.name}', file=sys.stderr, flush=True)
            for process in running.values():
                process.send_signal(sig)
            deadline = time.monotonic() + timeout
            for process in running.values():
                try:
                    process.wait(None if sig == signal.SIGKILL else
                                 max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass

    def output_tail(self, name: str, timeout: float = 2.0) -> List[str]:
        """Return a node's last lines of output, to its end if it has exited (up to timeout)."""
        pump = self._pumps.get(name)
        if pump is not None and self.processes[name].poll() is not None:
            pump.join(timeout)
        return list(self.tails.get(name, ()))

    def dead(self) -> List[str]:
        return [name for name, p in self.processes.items() if p.poll() is not None]

    def __enter__(self) -> 'Stack':
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
