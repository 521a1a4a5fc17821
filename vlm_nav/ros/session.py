"""The rclpy session of a node's main(): Ctrl-C and `ros2 launch` shutdown end it cleanly."""

from contextlib import contextmanager
from typing import Iterator, List, Optional

import rclpy
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException


@contextmanager
def ros_session(args: Optional[List[str]] = None) -> Iterator[None]:
    """rclpy.init() for the body; a shutdown by signal exits it quietly (exit code 0).

    rclpy's signal handler shuts the context down asynchronously, so an executor caught
    building its wait set at that moment raises RCLError 'the given context is not valid'
    instead of ExternalShutdownException (the race ros2cli#854 describes; a recorder
    exited 1 on SIGINT this way, with its bag finished). That is a shutdown too. With the
    context still valid, an RCLError is a real failure and propagates.
    """
    try:
        with rclpy.init(args=args):
            try:
                yield
            except RCLError:
                if rclpy.ok():
                    raise
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
