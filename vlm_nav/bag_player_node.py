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
Replay camera frames from a rosbag2 file (sqlite3 or mcap) into the stack.

Reads with the `rosbags` library (rosbag2_py is not on PyPI). Keeps the original
timing (scaled by `rate`) or plays as fast as possible (`rate` 0). Frames are
re-stamped with the replay clock by default: the navigator stops on perception
older than its timeout, and a recording's stamps are old by definition.

The publishers come from the bag's connections before the first message, and playback
waits (up to `wait_for_subscribers_s`) until each topic has a subscriber: a publisher
created on its first message loses that message to discovery. Playback runs on its own
thread while the node spins, so `ros2 param set` (e.g. `rate`) works during a replay.
"""

from pathlib import Path
import threading
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.task import Future
from rosbags.highlevel import AnyReader

from vlm_nav.ros.bag_types import message_class
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session

SENSOR_TYPES = ('Image', 'CompressedImage', 'CameraInfo')


class BagPlayerNode(Node):

    def __init__(self, **kwargs):
        super().__init__('bag_player_node', **kwargs)
        self.bag = declare(self, 'bag', '', 'rosbag2 folder (metadata.yaml + .mcap or .db3)',
                           read_only=True)
        self.topics = declare(self, 'topics', ['/camera/image_raw', '/camera/camera_info'],
                              'topics to replay (others in the bag are ignored)',
                              read_only=True)
        declare(self, 'rate', 1.0, 'playback speed; 0 = as fast as possible', 0.0, 100.0)
        declare(self, 'loop', False, 'start again at the end', read_only=True)
        declare(self, 'restamp', True, 'stamp headers with the replay clock', read_only=True)
        self.wait_for_subscribers_s = declare(
            self, 'wait_for_subscribers_s', 2.0,
            'before playing, wait up to this long for a subscriber on every replayed topic',
            0.0, 3600.0, read_only=True)
        if not self.bag:
            raise ValueError('parameter bag is required')
        self.played = 0
        # Fails here, with what the bag has, rather than on a thread later.
        self._outputs = {}
        for topic, msgtype in self._connections().items():
            cls = message_class(msgtype)
            qos = qos_profile_sensor_data if cls.__name__ in SENSOR_TYPES else 10
            # Relative names: namespaces and remaps apply.
            self._outputs[topic] = self.create_publisher(cls, topic.lstrip('/'), qos)
        self.finished = Future()
        self._worker = threading.Thread(target=self._run, name='bag_player', daemon=True)
        self._worker.start()

    def _connections(self) -> dict:
        """Return topic -> message type of the replayed topics in the bag."""
        with AnyReader([Path(self.bag)]) as reader:
            found = {c.topic: c.msgtype for c in reader.connections if c.topic in self.topics}
            if not found:
                raise ValueError(f'none of {self.topics} in {self.bag}; it has '
                                 f'{sorted({c.topic for c in reader.connections})}')
        return found

    def _run(self) -> None:
        try:
            self._wait_for_subscribers()
            self._play()
            self.finished.set_result(self.played)
        except Exception as error:       # reported by main(), not lost with the thread
            self.finished.set_exception(error)

    def _wait_for_subscribers(self) -> None:
        deadline = time.monotonic() + self.wait_for_subscribers_s
        while self.context.ok() and time.monotonic() < deadline:
            if all(p.get_subscription_count() > 0 for p in self._outputs.values()):
                return
            time.sleep(0.05)
        missing = [t for t, p in self._outputs.items() if p.get_subscription_count() == 0]
        if missing and self.wait_for_subscribers_s > 0:
            self.get_logger().info(
                f'no subscriber on {missing} after {self.wait_for_subscribers_s:.1f} s; '
                'playing anyway')

    def _play(self) -> None:
        while self.context.ok():
            with AnyReader([Path(self.bag)]) as reader:
                wanted = [c for c in reader.connections if c.topic in self._outputs]
                anchor = None            # (bag ns, wall s, rate): the timing's reference
                for connection, timestamp, raw in reader.messages(connections=wanted):
                    rate = self.get_parameter('rate').value
                    if anchor is None or anchor[2] != rate:
                        # A new rate (ros2 param set) applies from here on, without a jump.
                        anchor = (timestamp, time.monotonic(), rate)
                    if rate > 0:
                        due = anchor[1] + (timestamp - anchor[0]) * 1e-9 / rate
                        while self.context.ok() and time.monotonic() < due:
                            time.sleep(min(0.1, max(0.0, due - time.monotonic())))
                    if not self.context.ok():
                        return
                    self._publish(connection.topic, raw)
            if not self.get_parameter('loop').value:
                break
        self.get_logger().info(f'replay finished: {self.played} messages from {self.bag}')

    def _publish(self, topic: str, raw: bytes) -> None:
        cls = self._outputs[topic].msg_type
        if self.get_parameter('restamp').value and hasattr(cls, 'header'):
            msg = deserialize_message(bytes(raw), cls)
            msg.header.stamp = self.get_clock().now().to_msg()
            raw = serialize_message(msg)
        self._outputs[topic].publish(bytes(raw))
        self.played += 1


def main(args=None):
    with ros_session(args=args):
        node = BagPlayerNode()
        rclpy.spin_until_future_complete(node, node.finished)
        node.finished.result()      # a playback error ends the process with its traceback


if __name__ == '__main__':
    main()
