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
Replay a robot's rosbag2 into the stack: its camera on camera/image_raw, with camera_info.

The bag layer (vlm_nav.ros.bags) opens any rosbag2 (sqlite3 or mcap, split, compressed,
with or without stored message definitions) and finds the camera: the bag's only image
stream, or the one `camera_topic` names. Its frames, raw in any encoding vlm_nav.ros.image
converts or compressed, are published as rgb8 on `camera/image_raw`, each followed by
`camera/camera_info` with the same stamp: the bag's CameraInfo for that camera (its latest)
or one made from the frame's size. A depth stream (16UC1/32FC1) goes to `depth_topic` when
one is set, with its own camera_info (the bag's sibling camera_info topic, when it is not
the colour camera's) beside it (camera/depth/camera_info for camera/depth/image_raw);
`topics` names other topics (scan, odom) replayed under their own names when
the bag has them.

Keeps the original timing (scaled by `rate`) or plays as fast as possible (`rate` 0).
Frames are re-stamped with the replay clock by default: the navigator stops on perception
older than its timeout, and a recording's stamps are old by definition.

The publishers exist before the first message, and playback waits (up to
`wait_for_subscribers_s`) for a subscriber on camera/image_raw, then up to a second more for
the other topics': a publisher created on its first message loses that message to
discovery. Playback runs on its own thread while the node spins, so `ros2 param set`
(e.g. `rate`) works during a replay.

A replay that delivered no frame to a subscriber fails: the process exits 1 with one line,
`bag_player_node: replay failed: REASON` (no camera in the bag, every frame refused,
nothing subscribed), as `vlm-nav bringup replay` and replay.launch.py report it.
"""

import sys
import threading
import time

from builtin_interfaces.msg import Time
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from rclpy.serialization import deserialize_message, serialize_message
from rclpy.task import Future
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vlm_nav import debug_requested
from vlm_nav.ros.bags import Bag, BagError, CAMERA_INFO, message_class, topic_name
from vlm_nav.ros.image import compressed_to_rgb, image_to_rgb, rgb_to_image
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session

SENSOR_TYPES = ('Image', 'CompressedImage', 'CameraInfo', 'LaserScan', 'PointCloud2')
FAILED = 'replay failed: '          # the prefix of the one line a failed replay prints
OTHERS_GRACE_S = 1.0                # after the camera's subscriber, for the other topics'


class BagPlayerNode(Node):

    def __init__(self, **kwargs):
        super().__init__('bag_player_node', **kwargs)
        self.bag = declare(self, 'bag', '', 'rosbag2 to replay: its folder (metadata.yaml and '
                           '.mcap/.db3 files) or one .mcap/.db3 file', read_only=True)
        self.distro = declare(self, 'distro', '', 'typestore for a bag without stored message '
                              "definitions (humble, jazzy, kilted, ...); '' = from the bag's "
                              'metadata', read_only=True)
        self.camera_topic = declare(self, 'camera_topic', '', "the bag's camera topic "
                                    "(Image or CompressedImage); '' = its only camera",
                                    read_only=True)
        self.depth_topic = declare(self, 'depth_topic', '', "publish the bag's depth stream "
                                   "(16UC1/32FC1) here; '' = not replayed", read_only=True)
        self.bag_depth_topic = declare(self, 'bag_depth_topic', '', "the bag's depth topic; "
                                       "'' = its only depth stream", read_only=True)
        self.topics = declare(self, 'topics', ['/scan', '/odom'],
                              'other topics replayed under their own names when the bag has '
                              'them', read_only=True)
        declare(self, 'rate', 1.0, 'playback speed; 0 = as fast as possible', 0.0, 100.0)
        declare(self, 'loop', False, 'start again at the end', read_only=True)
        declare(self, 'restamp', True, 'stamp headers with the replay clock', read_only=True)
        self.wait_for_subscribers_s = declare(
            self, 'wait_for_subscribers_s', 30.0,
            'before playing, wait up to this long for a subscriber on camera/image_raw '
            '(none: the replay fails); 0 = play at once', 0.0, 3600.0, read_only=True)
        if not self.bag:
            raise BagError('parameter bag is required: the rosbag2 folder or .mcap/.db3 file '
                           'to replay')
        self.played = 0                  # messages published
        self.frames = 0                  # camera frames published
        self.delivered = 0               # ... while camera/image_raw had a subscriber
        self.refused = 0                 # camera frames that could not be converted
        self._first_refusal = ''
        # Fails here, with what the bag has, rather than on a thread later.
        with Bag(self.bag, self.distro) as bag:
            self.camera = bag.select_camera(self.camera_topic)
            self._info_topic = bag.camera_info_topic(self.camera)
            depth = bag.select_depth(self.bag_depth_topic) if self.depth_topic else None
            depth_info = bag.camera_info_topic(depth) if depth is not None else None
            self._info = None
            if self._info_topic:
                first = bag.first(self._info_topic)
                self._info = deserialize_message(bytes(first[2]), CameraInfo)
            present = bag.topics()
            self.get_logger().info(f'replaying {bag.describe()}')
        self._image_pub = self.create_publisher(Image, 'camera/image_raw',
                                                qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, 'camera/camera_info',
                                               qos_profile_sensor_data)
        # bag topic -> publisher of the messages passed through as they are (re-stamped)
        self._outputs = {}
        if depth is not None:
            name = self.depth_topic + ('/compressedDepth' if depth.compressed else '')
            self._outputs[depth.topic] = self.create_publisher(
                CompressedImage if depth.compressed else Image, name, qos_profile_sensor_data)
            if depth_info and depth_info != self._info_topic:   # its intrinsics, beside it
                head, _, _ = self.depth_topic.rpartition('/')
                self._outputs[depth_info] = self.create_publisher(
                    CameraInfo, f'{head}/camera_info' if head else 'camera_info',
                    qos_profile_sensor_data)
        taken = {self.camera.topic, self._info_topic} | set(self._outputs)
        for topic in (topic_name(t) for t in self.topics):
            if topic not in present or topic in taken or not present[topic][1]:
                continue
            try:
                cls = message_class(present[topic][0])
            except (ImportError, AttributeError, ValueError):
                self.get_logger().warning(f'not replaying {topic}: no Python class for '
                                          f'{present[topic][0]} here')
                continue
            qos = qos_profile_sensor_data if cls.__name__ in SENSOR_TYPES else 10
            # Relative names: namespaces and remaps apply.
            self._outputs[topic] = self.create_publisher(cls, topic.lstrip('/'), qos)
        info = (f'camera_info from {self._info_topic}' if self._info_topic
                else 'camera_info made from the frame size')
        passed = ', '.join(f'{t} -> {p.topic_name}' for t, p in self._outputs.items())
        self.get_logger().info(f'camera {self.camera.describe()} -> '
                               f'{self._image_pub.topic_name} (rgb8), {info}' +
                               (f'; also {passed}' if passed else ''))
        self.finished = Future()
        self._worker = threading.Thread(target=self._run, name='bag_player', daemon=True)
        self._worker.start()

    def _run(self) -> None:
        try:
            self._wait_for_subscribers()
            self._play()
            if self.context.ok():
                self._check_delivered()
            self.finished.set_result(self.frames)
        except Exception as error:       # reported by main(), not lost with the thread
            self.finished.set_exception(error)

    def _wait_for_subscribers(self) -> None:
        if self.wait_for_subscribers_s <= 0:
            return
        deadline = time.monotonic() + self.wait_for_subscribers_s
        camera_since = None
        while self.context.ok() and time.monotonic() < deadline:
            if self._image_pub.get_subscription_count() > 0:
                camera_since = camera_since or time.monotonic()
                if all(p.get_subscription_count() > 0 for p in self._outputs.values()) or \
                        time.monotonic() - camera_since >= OTHERS_GRACE_S:
                    return
            time.sleep(0.05)
        if self.context.ok() and not self._image_pub.get_subscription_count():
            raise BagError(f'nothing subscribed to {self._image_pub.topic_name} within '
                           f'wait_for_subscribers_s ({self.wait_for_subscribers_s:g} s), so no '
                           f'frame of {self.bag} was played: start vlm_node (or the stack) '
                           'in the same ROS domain, or raise wait_for_subscribers_s')

    def _play(self) -> None:
        topics = [self.camera.topic] + list(self._outputs)
        if self._info_topic:
            topics.append(self._info_topic)
        while self.context.ok():
            with Bag(self.bag, self.distro) as bag:
                anchor = None            # (bag ns, wall s, rate): the timing's reference
                for topic, msgtype, timestamp, raw in bag.messages(topics):
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
                    if topic == self.camera.topic:
                        self._publish_frame(bag, msgtype, raw)
                    elif topic == self._info_topic and msgtype == CAMERA_INFO:
                        self._info = deserialize_message(bytes(raw), CameraInfo)
                    else:
                        self._publish(topic, raw)
            if not self.get_parameter('loop').value:
                break
        refused = (f', {self.refused} refused ({self._first_refusal})'
                   if self.refused else '')
        self.get_logger().info(f'replay finished: {self.frames} frames ({self.delivered} '
                               f'with a subscriber){refused}, {self.played} messages in all, '
                               f'from {self.bag}')

    def _publish_frame(self, bag: Bag, msgtype: str, raw: bytes) -> None:
        """Convert a camera frame to rgb8 and publish it, then its camera_info; count refusals."""
        try:
            msg = bag.deserialize(raw, msgtype)
            rgb = compressed_to_rgb(msg) if self.camera.compressed else image_to_rgb(msg)
        except Exception as error:  # noqa: B902 - a bad frame (any decoder's error) is skipped
            self.refused += 1
            self._first_refusal = self._first_refusal or f'{error}'.strip()
            self.get_logger().warning(f'frame skipped: {error}', throttle_duration_sec=5.0)
            return
        if self.get_parameter('restamp').value:
            stamp = self.get_clock().now().to_msg()
        else:
            stamp = Time(sec=int(msg.header.stamp.sec), nanosec=int(msg.header.stamp.nanosec))
        frame_id = str(msg.header.frame_id)
        if self._image_pub.get_subscription_count() > 0:
            self.delivered += 1
        self._image_pub.publish(rgb_to_image(rgb, stamp, frame_id))
        info = self._info or CameraInfo(width=int(rgb.shape[1]), height=int(rgb.shape[0]))
        info.header.stamp, info.header.frame_id = stamp, frame_id
        self._info_pub.publish(info)
        self.frames += 1
        self.played += 2

    def _publish(self, topic: str, raw: bytes) -> None:
        publisher = self._outputs[topic]
        if self.get_parameter('restamp').value and hasattr(publisher.msg_type, 'header'):
            msg = deserialize_message(bytes(raw), publisher.msg_type)
            msg.header.stamp = self.get_clock().now().to_msg()
            raw = serialize_message(msg)
        publisher.publish(bytes(raw))
        self.played += 1

    def _check_delivered(self) -> None:
        """Raise BagError, saying why, when no frame reached a subscriber."""
        if self.delivered:
            return
        if self.refused and not self.frames:
            raise BagError(f'every one of the {self.refused} frames of {self.camera.topic} in '
                           f'{self.bag} was refused ({self._first_refusal}): record the camera '
                           'in an encoding vlm_nav reads, or pick another camera with '
                           '--camera-topic (camera_topic:=)')
        raise BagError(f'none of the {self.frames} frames of {self.camera.topic} in '
                       f'{self.bag} reached a subscriber of {self._image_pub.topic_name}: '
                       'start vlm_node (or the stack) in the same ROS domain, or raise '
                       'wait_for_subscribers_s')


def main(args=None) -> int:
    """Replay the bag; exit 1 with one line on stderr when the replay delivered no frame."""
    try:
        with ros_session(args=args):
            node = BagPlayerNode()
            rclpy.spin_until_future_complete(node, node.finished)
            if node.finished.done():
                node.finished.result()
    except BagError as error:
        if debug_requested():
            raise
        print(f'bag_player_node: {FAILED}{error}', file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
