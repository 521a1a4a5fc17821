"""Replay camera frames from a rosbag2 file (sqlite3 or mcap) into the stack.

Reads with the `rosbags` library (rosbag2_py is not on PyPI). Keeps the original
timing (scaled by `rate`) or plays as fast as possible (`rate` 0). Frames are
re-stamped with the replay clock by default: the navigator stops on perception
older than its timeout, and a recording's stamps are old by definition.
"""

import importlib
import time

import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message

from vlm_nav.ros_params import declare
from vlm_nav.ros_session import ros_session


def message_class(type_name: str):
    """'sensor_msgs/msg/Image' -> the rclpy message class."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


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
        if not self.bag:
            raise ValueError('parameter bag is required')
        self.played = 0
        self._outputs = {}
        self._done = False

    def play(self) -> None:
        from pathlib import Path

        from rosbags.highlevel import AnyReader
        paths = [Path(self.bag)]
        while rclpy.ok():
            with AnyReader(paths) as reader:
                wanted = [c for c in reader.connections if c.topic in self.topics]
                if not wanted:
                    raise ValueError(f'none of {self.topics} in {self.bag}; it has '
                                     f'{sorted({c.topic for c in reader.connections})}')
                start_bag, start_wall = None, time.monotonic()
                for connection, timestamp, raw in reader.messages(connections=wanted):
                    if not rclpy.ok():
                        return
                    start_bag = timestamp if start_bag is None else start_bag
                    rate = self.get_parameter('rate').value
                    if rate > 0:
                        due = start_wall + (timestamp - start_bag) * 1e-9 / rate
                        time.sleep(max(0.0, due - time.monotonic()))
                    self._publish(connection, raw)
            if not self.get_parameter('loop').value:
                break
        self.get_logger().info(f'replay finished: {self.played} messages from {self.bag}')

    def _publish(self, connection, raw: bytes) -> None:
        cls = message_class(connection.msgtype)
        topic = connection.topic.lstrip('/')   # relative: namespaces and remaps apply
        if topic not in self._outputs:
            sensor = cls.__name__ in ('Image', 'CompressedImage', 'CameraInfo')
            qos = qos_profile_sensor_data if sensor else 10
            self._outputs[topic] = self.create_publisher(cls, topic, qos)
        if self.get_parameter('restamp').value and hasattr(cls, 'header'):
            msg = deserialize_message(bytes(raw), cls)
            msg.header.stamp = self.get_clock().now().to_msg()
            raw = serialize_message(msg)
        self._outputs[topic].publish(bytes(raw))
        self.played += 1


def main(args=None):
    with ros_session(args=args):
        node = BagPlayerNode()
        node.play()


if __name__ == '__main__':
    main()
