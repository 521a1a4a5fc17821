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
Camera ingest: V4L2/USB device, video file, image folder, topic relay or a test pattern.

Publishes camera/image_raw (rgb8) + camera/camera_info with sensor-data QoS at a set
rate, resolution and frame_id. In relay mode the newest input frame (Image or
CompressedImage) wins; bad input frames are skipped, counted and logged.
"""

import glob
import os
import threading
from typing import Optional

import cv2
import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vlm_nav.ros.diagnostics import DiagnosticsPublisher, OK, WARN
from vlm_nav.ros.image import compressed_to_rgb, image_to_rgb, ImageError, resize_rgb, \
    rgb_to_image
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session

SOURCES = ('test_pattern', 'device', 'video', 'folder', 'topic')
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.ppm')


class FrameSource:
    """Pulls frames from OpenCV (device / video) or a folder, looping where asked."""

    def __init__(self, kind: str, location: str, loop: bool):
        self.kind, self.location, self.loop = kind, location, loop
        self._capture = None
        self._files = []
        self._index = 0
        if kind == 'device':
            device = int(location) if location.isdigit() else location
            self._capture = cv2.VideoCapture(device)
        elif kind == 'video':
            if not os.path.isfile(location):
                raise FileNotFoundError(f'video file not found: {location!r}')
            self._capture = cv2.VideoCapture(location)
        elif kind == 'folder':
            self._files = sorted(f for f in glob.glob(os.path.join(location, '*'))
                                 if f.lower().endswith(IMAGE_SUFFIXES))
            if not self._files:
                raise FileNotFoundError(f'no images ({", ".join(IMAGE_SUFFIXES)}) in '
                                        f'{location!r}')
        if self._capture is not None and not self._capture.isOpened():
            raise RuntimeError(f'OpenCV could not open {kind} {location!r}')

    def read(self) -> Optional[np.ndarray]:
        """Return the next RGB frame, or None when the source is exhausted / unreadable."""
        if self.kind == 'folder':
            if self._index >= len(self._files):
                if not self.loop:
                    return None
                self._index = 0
            path = self._files[self._index]
            self._index += 1
            bgr = cv2.imread(path, cv2.IMREAD_COLOR)
            if bgr is None:
                raise ImageError(f'could not read image file {path!r}')
            return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        ok, bgr = self._capture.read()
        if not ok and self.kind == 'video' and self.loop:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, bgr = self._capture.read()
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if ok else None

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()


def test_pattern(index: int, width: int, height: int) -> np.ndarray:
    """Draw moving coloured shapes (like image_tools' burger mode): no hardware needed."""
    frame = np.full((height, width, 3), 40, np.uint8)
    x = int((index * 4) % width)
    cv2.circle(frame, (x, height // 2), max(4, height // 8), (220, 30, 30), -1)
    cv2.rectangle(frame, (width // 4, height // 4), (width // 4 + width // 8,
                  height // 4 + height // 8), (30, 30, 220), -1)
    return frame


class CameraNode(Node):

    def __init__(self, **kwargs):
        super().__init__('camera_node', **kwargs)
        self.source_type = declare(self, 'source_type', 'test_pattern', 'where frames come from',
                                   choices=SOURCES, read_only=True)
        self.source = declare(self, 'source', '', 'device index/path, video file, image '
                              'folder; unused for topic/test_pattern', read_only=True)
        declare(self, 'rate_hz', 10.0, 'publish rate', 0.1, 120.0)
        declare(self, 'width', 0, 'output width (0 = as captured)', 0, 8192)
        declare(self, 'height', 0, 'output height (0 = as captured)', 0, 8192)
        declare(self, 'frame_id', 'camera', 'frame_id of published images')
        declare(self, 'loop', True, 'restart video files and folders at the end',
                read_only=True)
        self.add_post_set_parameters_callback(self._on_parameters_set)

        self._image_pub = self.create_publisher(Image, 'camera/image_raw',
                                                qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, 'camera/camera_info',
                                               qos_profile_sensor_data)
        self._lock = threading.Lock()
        self._relay_frame: Optional[np.ndarray] = None
        self._index = 0
        self._counts = {'published': 0, 'rejected': 0, 'last_reject_reason': '',
                        'source_errors': 0}
        self._source: Optional[FrameSource] = None
        if self.source_type == 'topic':
            self.create_subscription(Image, 'image_in', self._on_image, qos_profile_sensor_data)
            self.create_subscription(CompressedImage, 'image_in/compressed',
                                     self._on_compressed, qos_profile_sensor_data)
        elif self.source_type != 'test_pattern':
            self._source = FrameSource(self.source_type, self.source,
                                       self.get_parameter('loop').value)
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_timer(1.0, self._publish_diagnostics)
        self._timer = self.create_timer(1.0 / self.get_parameter('rate_hz').value, self._tick)

    def _on_parameters_set(self, params) -> None:
        if any(p.name == 'rate_hz' for p in params):
            self._timer.cancel()
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / self.get_parameter('rate_hz').value,
                                            self._tick)

    def _on_image(self, msg: Image) -> None:
        self._relay(msg, image_to_rgb)

    def _on_compressed(self, msg: CompressedImage) -> None:
        self._relay(msg, compressed_to_rgb)

    def _relay(self, msg, convert) -> None:
        try:
            rgb = convert(msg)
        except ImageError as error:
            self._counts['rejected'] += 1
            self._counts['last_reject_reason'] = str(error)
            self.get_logger().warning(f'input frame skipped: {error}', throttle_duration_sec=5.0)
            return
        with self._lock:
            self._relay_frame = rgb

    def _next_frame(self) -> Optional[np.ndarray]:
        if self.source_type == 'topic':
            with self._lock:
                frame, self._relay_frame = self._relay_frame, None
            return frame
        if self.source_type == 'test_pattern':
            width = self.get_parameter('width').value or 160
            height = self.get_parameter('height').value or 120
            return test_pattern(self._index, width, height)
        try:
            return self._source.read()
        except ImageError as error:
            self._counts['source_errors'] += 1
            self.get_logger().warning(str(error), throttle_duration_sec=5.0)
            return None

    def _tick(self) -> None:
        frame = self._next_frame()
        if frame is None:
            return
        self._index += 1
        size = (self.get_parameter('width').value, self.get_parameter('height').value)
        frame = resize_rgb(frame, size)
        stamp = self.get_clock().now().to_msg()
        frame_id = self.get_parameter('frame_id').value
        self._image_pub.publish(rgb_to_image(frame, stamp, frame_id))
        info = CameraInfo(width=frame.shape[1], height=frame.shape[0])
        info.header.stamp, info.header.frame_id = stamp, frame_id
        self._info_pub.publish(info)
        self._counts['published'] += 1

    def _publish_diagnostics(self) -> None:
        level = WARN if self._counts['rejected'] or self._counts['source_errors'] else OK
        self._diagnostics.publish(level, f'{self.source_type} source', dict(
            self._counts, source=self.source, rate_hz=self.get_parameter('rate_hz').value))

    def destroy_node(self):
        if self._source is not None:
            self._source.close()
        return super().destroy_node()


def main(args=None):
    with ros_session(args=args):
        rclpy.spin(CameraNode())


if __name__ == '__main__':
    main()
