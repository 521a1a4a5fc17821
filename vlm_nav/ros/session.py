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

"""The rclpy session of a node's main(): Ctrl-C and `ros2 launch` shutdown end it cleanly."""

from contextlib import contextmanager
from typing import Callable, Iterator, List, Optional, Sequence

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import Executor, ExternalShutdownException
from rclpy.node import Node
from vlm_nav.ros.compat import rclpy_initialized, shutdown_executor


@contextmanager
def ros_session(args: Optional[List[str]] = None) -> Iterator[None]:
    """
    Run the body in rclpy.init(); a shutdown by signal exits it quietly (exit code 0).

    rclpy's signal handler shuts the context down asynchronously, so an executor caught
    building its wait set at that moment raises RCLError 'the given context is not valid'
    instead of ExternalShutdownException (the race ros2cli#854 describes; a recorder
    would exit 1 on SIGINT this way, with its bag finished). That is a shutdown too. With the
    context still valid, an RCLError is a real failure and propagates.
    """
    try:
        with rclpy_initialized(args):
            try:
                yield
            except RCLError:
                if rclpy.ok():
                    raise
    except (KeyboardInterrupt, ExternalShutdownException):
        pass


def spin_until_shutdown(nodes: Sequence[Node], executor: Executor,
                        stop: Optional[Callable[[], None]] = None) -> None:
    """
    Spin nodes on executor until shutdown; then end their callbacks, then destroy them.

    For executors that run callbacks on threads of their own (MultiThreadedExecutor): when
    the spin ends, callbacks may still be running there. The session's end destroys every
    node of the context; a callback finishing after that sends its response through a
    destroyed service, and the error, kept in the executor's task, is printed at exit as
    'The following exception was never retrieved: cannot use Destroyable because
    destruction was requested'. So, in this order: stop() tells the nodes to end the work
    in flight (wake their waits, drop queued work), shutdown_executor() waits for the
    callbacks, and the nodes are destroyed while none runs.
    """
    for node in nodes:
        executor.add_node(node)
    try:
        executor.spin()
    finally:
        if stop is not None:
            stop()
        shutdown_executor(executor)
        for node in nodes:
            node.destroy_node()
