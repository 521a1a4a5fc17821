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
What differs between the ROS 2 distros vlm_nav runs on (Kilted, Jazzy), in one place.

Each helper takes the newer API where rclpy has it and does the same by hand where it
does not, so node code reads the same on every distro.
"""

from contextlib import contextmanager
from typing import Iterator, List, Optional, TypeVar

import rclpy
from rclpy.executors import Executor, MultiThreadedExecutor
from rclpy.node import Node
from rclpy.signals import uninstall_signal_handlers

NodeT = TypeVar('NodeT', bound=Node)


@contextmanager
def rclpy_initialized(args: Optional[List[str]] = None) -> Iterator[None]:
    """
    Run the body in rclpy.init(args) on the default context; shut it down at the end.

    Kilted's rclpy.init returns a context manager that shuts the context down and removes
    rclpy's signal handlers on exit; Jazzy's returns None, so both are done here.
    """
    initialized = rclpy.init(args=args)
    if initialized is not None:
        with initialized:
            yield
        return
    try:
        yield
    finally:
        rclpy.try_shutdown()
        uninstall_signal_handlers()


@contextmanager
def node_scope(node: NodeT) -> Iterator[NodeT]:
    """
    Yield node; destroy it when the body ends, however it ends.

    `with node:` does this on Kilted (Node is a context manager there); Jazzy's Node is
    not one.
    """
    try:
        yield node
    finally:
        node.destroy_node()


def shutdown_executor(executor: Executor) -> None:
    """
    Shut executor down and wait until no callback of it runs any more.

    Kilted's MultiThreadedExecutor.shutdown joins the thread pool its callbacks run on.
    Jazzy's has no shutdown of its own: Executor.shutdown returns while callbacks still
    run on the pool's threads, so the pool is joined here (a second join is a no-op).
    """
    executor.shutdown()
    if isinstance(executor, MultiThreadedExecutor):
        executor._executor.shutdown(wait=True)
