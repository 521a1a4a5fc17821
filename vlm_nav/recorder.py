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
Record the stack's topics to a rosbag2 (mcap or sqlite3): `ros2 bag record` for the pip path.

Messages are stored as the raw CDR bytes received (raw subscriptions: nothing is
deserialized), stamped with the receive time, as `ros2 bag record` does. Topic types are
learnt from the graph, so any topic can be recorded once a publisher appears; the default
topics are what replay and evaluate-bag need (camera, camera_info, depth, scan, odom,
ground truth) and what the stack decided, each recorded once it is published.

The bag opens in `ros2 bag play` on Humble, Jazzy and Kilted: metadata version 8 (the
newest whose offered QoS profiles Humble parses: a string of numeric policies, here the
publishers' own), with every type's definition stored (mcap schemas, sqlite3
message_definitions) from rosbags' Kilted typestore, and for packages it doesn't know
(such as vlm_nav_interfaces) from the package's installed .msg files.
"""

from pathlib import Path
import time
from typing import Dict, List, Optional

import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness, QosReliability,
                                QosTime)
from rosbags.rosbag2 import StoragePlugin, Writer

from vlm_nav.ros.bags import message_class, typestore_for
from vlm_nav.ros.diagnostics import DiagnosticsPublisher, ERROR, OK, WARN
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session

STORAGES = ('mcap', 'sqlite3')
DEFAULT_TOPICS = ['camera/image_raw', 'camera/camera_info', 'camera/depth/image_raw',
                  'camera/depth/camera_info', 'scan',
                  'odom', 'scene_description', 'scene_description/structured',
                  'vlm_nav/navigator_state', 'cmd_vel', 'vlm_nav/debug_image',
                  'vlm_nav/markers', 'sim/ground_truth']
METADATA_VERSION = 8     # Humble's ros2 bag play reads it; Jazzy and Kilted read every one


def _policy(enum, value) -> object:
    try:
        return enum(int(value))
    except ValueError:
        return enum.UNKNOWN


def _time(duration) -> QosTime:
    return QosTime(*divmod(int(duration.nanoseconds), 1_000_000_000))


def offered_qos(publishers) -> List[Qos]:
    """Return the QoS profiles the publishers of a topic offer, as rosbag2 stores them."""
    return [Qos(_policy(QosHistory, p.history), int(p.depth),
                _policy(QosReliability, p.reliability), _policy(QosDurability, p.durability),
                _time(p.deadline), _time(p.lifespan), _policy(QosLiveliness, p.liveliness),
                _time(p.liveliness_lease_duration), bool(p.avoid_ros_namespace_conventions))
            for p in (info.qos_profile for info in publishers)]


class Recorder(Node):
    """Subscribes (raw) to the listed topics as they appear and writes every message."""

    def __init__(self, **kwargs):
        super().__init__('recorder', **kwargs)
        output = declare(self, 'output', '', 'rosbag2 folder to create (must not exist); '
                         '"" = vlm_nav_<date>_<time> in the working directory',
                         read_only=True)
        self.storage = declare(self, 'storage', 'mcap', 'rosbag2 storage plugin',
                               choices=STORAGES, read_only=True)
        topics = declare(self, 'topics', list(DEFAULT_TOPICS),
                         'topics to record; relative names resolve in the node namespace',
                         read_only=True)
        declare(self, 'discovery_period_s', 0.5, 'how often to look for new publishers',
                0.05, 10.0, read_only=True)
        self.max_duration_s = declare(self, 'max_duration_s', 0.0, 'stop this long after the '
                                      'first recorded message; 0 = until shut down', 0.0, 1e6,
                                      read_only=True)
        if self.storage not in STORAGES:
            raise ValueError(f'storage must be one of {STORAGES}, not {self.storage!r}')
        self.output = output or time.strftime('vlm_nav_%Y%m%d_%H%M%S')
        self._wanted = {self.resolve_topic_name(t): t for t in topics}
        self.counts: Dict[str, int] = dict.fromkeys(self._wanted, 0)
        self._bytes = 0
        self._subscribed: Dict[str, object] = {}
        self._connections: Dict[str, object] = {}
        self._problems: Dict[str, str] = {}
        # The duration counts from the first message, not from start-up: discovery can take
        # seconds on a loaded machine, and a 4 s recording should hold 4 s of data.
        self._first_write: Optional[float] = None
        self.done = Future()             # set when max_duration_s is reached

        plugin = StoragePlugin.MCAP if self.storage == 'mcap' else StoragePlugin.SQLITE3
        self._writer: Optional[Writer] = Writer(Path(self.output), version=METADATA_VERSION,
                                                storage_plugin=plugin)
        self._writer.open()
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_timer(1.0, self._publish_diagnostics)
        self.create_timer(self.get_parameter('discovery_period_s').value, self._discover)
        self.get_logger().info(f'recording {sorted(self._wanted)} to {self.output} '
                               f'({self.storage})')
        self._discover()

    def _duration_reached(self) -> bool:
        if self.max_duration_s and self._first_write is not None \
                and time.monotonic() - self._first_write >= self.max_duration_s:
            if not self.done.done():
                self.done.set_result(True)
            return True
        return False

    def _discover(self) -> None:
        if self._duration_reached():
            return
        for name, types in self.get_topic_names_and_types():
            if name not in self._wanted or name in self._subscribed or name in self._problems:
                continue
            if not self.count_publishers(name):
                continue                  # known from a subscriber only: QoS unknown yet
            try:
                self._subscribe(name, types[0])
            except Exception as error:  # noqa: B902 - one bad topic must not stop the rest
                self._problems[name] = f'{type(error).__name__}: {error}'
                self.get_logger().error(f'cannot record {name}: {self._problems[name]}')

    def _subscribe(self, name: str, msgtype: str) -> None:
        typestore = typestore_for([msgtype])
        publishers = self.get_publishers_info_by_topic(name)
        self._connections[name] = self._writer.add_connection(
            name, msgtype, typestore=typestore, offered_qos_profiles=offered_qos(publishers))
        # Match what is published: a reliable reader would not hear best-effort cameras.
        reliable = publishers and all(p.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                                      for p in publishers)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE if reliable
                         else ReliabilityPolicy.BEST_EFFORT)
        self._subscribed[name] = self.create_subscription(
            message_class(msgtype), name, lambda raw, n=name: self._write(n, raw), qos,
            raw=True)
        self.get_logger().info(f'recording {name} ({msgtype}, '
                               f'{"reliable" if reliable else "best effort"})')

    def _write(self, name: str, raw: bytes) -> None:
        if self._writer is None or self._duration_reached():
            return
        if self._first_write is None:
            self._first_write = time.monotonic()
        self._writer.write(self._connections[name], self.get_clock().now().nanoseconds, raw)
        self.counts[name] += 1
        self._bytes += len(raw)

    def _publish_diagnostics(self) -> None:
        # A default topic nobody publishes (no depth camera, no simulator) is not a fault.
        missing = sorted(n for n in self._wanted if n not in self._subscribed)
        if self._problems:
            level, message = ERROR, f'cannot record {sorted(self._problems)}'
        elif not self._subscribed:
            level, message = WARN, f'waiting for publishers of any of {missing}'
        else:
            level, message = OK, (f'recording {len(self._subscribed)} of '
                                  f'{len(self._wanted)} topics to {self.output}')
        values = {f'count {n}': c for n, c in self.counts.items()}
        self._diagnostics.publish(level, message, dict(
            values, bytes=self._bytes, output=self.output,
            not_published=' '.join(missing)))

    def close(self) -> None:
        """Finish the bag (metadata.yaml, mcap summary); safe to call twice."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None
            total = sum(self.counts.values())
            self.get_logger().info(f'wrote {total} messages ({self._bytes} bytes) to '
                                   f'{self.output}: {self.counts}')

    def destroy_node(self):
        self.close()
        return super().destroy_node()


def main(args=None):
    node = None
    try:
        with ros_session(args=args):
            node = Recorder()
            rclpy.spin_until_future_complete(node, node.done)
    finally:
        if node is not None:
            node.close()       # the bag must be finished even when interrupted


if __name__ == '__main__':
    main()
