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
Convert sensor_msgs images to and from numpy RGB, with the checks that keep bad frames out.

cv_bridge is not available on the pip path (the PyPI `cv-bridge` is the ROS 1 one and
breaks with numpy 2), so conversion is done here with numpy/OpenCV for the few
encodings a camera sends.
"""

from typing import Tuple

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image

# encoding -> (channels, conversion to RGB or None)
ENCODINGS = {
    'rgb8': (3, None),
    'bgr8': (3, cv2.COLOR_BGR2RGB),
    'rgba8': (4, cv2.COLOR_RGBA2RGB),
    'bgra8': (4, cv2.COLOR_BGRA2RGB),
    'mono8': (1, cv2.COLOR_GRAY2RGB),
}
MAX_SIDE = 8192   # larger frames are refused: no camera the package targets sends them


class ImageError(ValueError):
    """A frame that can't be used; the message says why."""


def image_to_rgb(msg: Image) -> np.ndarray:
    """Return a validated HxWx3 uint8 RGB view/copy of an Image message."""
    encoding = msg.encoding.lower()
    if encoding not in ENCODINGS:
        raise ImageError(f'unsupported encoding {msg.encoding!r} '
                         f'(supported: {", ".join(sorted(ENCODINGS))})')
    channels, conversion = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f'empty image {width}x{height}')
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageError(f'image {width}x{height} exceeds {MAX_SIDE} px per side')
    if step < width * channels:
        raise ImageError(f'step {step} < width*channels {width * channels}')
    if len(msg.data) != step * height:
        raise ImageError(f'data has {len(msg.data)} bytes, expected step*height = '
                         f'{step * height}')
    flat = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray))
                         else msg.data, dtype=np.uint8)
    rows = flat.reshape(height, step)[:, :width * channels]
    pixels = rows.reshape(height, width, channels)
    if conversion is None:
        return np.ascontiguousarray(pixels)
    if channels == 1:
        pixels = pixels[:, :, 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels), conversion)


def compressed_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a CompressedImage (jpeg/png) to RGB."""
    buffer = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if buffer.size == 0:
        raise ImageError('empty compressed image')
    try:
        decoded = cv2.imdecode(buffer, cv2.IMREAD_COLOR)
    except cv2.error as error:
        # e.g. a header declaring more pixels than OpenCV allows: a bad frame, not a crash.
        raise ImageError(f'could not decode compressed image (format {msg.format!r}): '
                         f'{str(error).strip().splitlines()[-1]}') from None
    if decoded is None:
        raise ImageError(f'could not decode compressed image (format {msg.format!r})')
    if decoded.shape[0] > MAX_SIDE or decoded.shape[1] > MAX_SIDE:
        raise ImageError(f'decoded image {decoded.shape[1]}x{decoded.shape[0]} too large')
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def rgb_to_image(rgb: np.ndarray, stamp, frame_id: str) -> Image:
    """Build an Image message (rgb8) from an RGB array; data assigned as bytes (fast path)."""
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(rgb.shape[0]), int(rgb.shape[1])
    msg.encoding = 'rgb8'
    msg.is_bigendian = 0
    msg.step = msg.width * 3
    msg.data = np.ascontiguousarray(rgb, dtype=np.uint8).tobytes()
    return msg


def resize_rgb(rgb: np.ndarray, size: Tuple[int, int]) -> np.ndarray:
    """Resize to (width, height); (0, 0) or the same size keeps the frame."""
    width, height = size
    if width <= 0 or height <= 0 or (rgb.shape[1], rgb.shape[0]) == (width, height):
        return rgb
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)
