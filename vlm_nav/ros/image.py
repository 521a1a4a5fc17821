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
breaks with numpy 2), so conversion is done here with numpy/OpenCV, the way cv_bridge's
``imgmsg_to_cv2(msg, 'rgb8')`` does it: the same OpenCV conversion codes (Bayer names
mapped as in cv_bridge's table), colour conversion before the depth change, 16-bit values
scaled to 8 bits by 255/65535 with rounding, byte order from ``is_bigendian``.
"""

from typing import NamedTuple, Optional, Tuple

import cv2
import numpy as np
from sensor_msgs.msg import CompressedImage, Image


class Layout(NamedTuple):
    """How an encoding stores a pixel, and the OpenCV conversion that makes it RGB."""

    channels: int               # values per pixel in the message (yuv422: 2, Bayer: 1)
    depth: int                  # bytes per value: 1 or 2
    conversion: Optional[int]   # cv2.COLOR_* code to RGB, None when already RGB


# OpenCV names a Bayer pattern by the second row's second and third pixels, ROS by the
# first 2x2 block: ROS rggb is OpenCV BG, bggr is RG, gbrg is GR, grbg is GB.
_BAYER = {'rggb': cv2.COLOR_BayerBG2RGB, 'bggr': cv2.COLOR_BayerRG2RGB,
          'gbrg': cv2.COLOR_BayerGR2RGB, 'grbg': cv2.COLOR_BayerGB2RGB}

ENCODINGS = {
    'rgb8': Layout(3, 1, None),
    'bgr8': Layout(3, 1, cv2.COLOR_BGR2RGB),
    'rgba8': Layout(4, 1, cv2.COLOR_RGBA2RGB),
    'bgra8': Layout(4, 1, cv2.COLOR_BGRA2RGB),
    'mono8': Layout(1, 1, cv2.COLOR_GRAY2RGB),
    'rgb16': Layout(3, 2, None),
    'bgr16': Layout(3, 2, cv2.COLOR_BGR2RGB),
    'rgba16': Layout(4, 2, cv2.COLOR_RGBA2RGB),
    'bgra16': Layout(4, 2, cv2.COLOR_BGRA2RGB),
    'mono16': Layout(1, 2, cv2.COLOR_GRAY2RGB),
    # 4:2:2, two pixels sharing U and V; sensor_msgs also names them uyvy and yuyv.
    'yuv422': Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'uyvy': Layout(2, 1, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422_yuy2': Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2),
    'yuyv': Layout(2, 1, cv2.COLOR_YUV2RGB_YUY2),
    **{f'bayer_{pattern}{bits}': Layout(1, bits // 8, code)
       for pattern, code in _BAYER.items() for bits in (8, 16)},
}
MAX_SIDE = 8192   # larger frames are refused: no camera the package targets sends them
SCALE_16_TO_8 = 255.0 / 65535.0   # cv_bridge's factor for a 16-bit to 8-bit conversion


class ImageError(ValueError):
    """A frame that can't be used; the message says why."""


def image_to_rgb(msg: Image) -> np.ndarray:
    """Return a validated HxWx3 uint8 RGB view/copy of an Image message."""
    encoding = msg.encoding.lower()
    if encoding not in ENCODINGS:
        raise ImageError(f'unsupported encoding {msg.encoding!r} '
                         f'(supported: {", ".join(sorted(ENCODINGS))})')
    channels, depth, conversion = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f'empty image {width}x{height}')
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageError(f'image {width}x{height} exceeds {MAX_SIDE} px per side')
    if channels == 2 and width % 2:
        raise ImageError(f'{encoding} image has odd width {width}: pixels come in pairs '
                         'that share U and V, so the width must be even')
    if encoding.startswith('bayer_') and (height < 3 or width < 3):
        raise ImageError(f'{encoding} image {width}x{height} is too small to demosaic '
                         '(at least 3x3 pixels)')
    pixel_bytes = channels * depth
    if step < width * pixel_bytes:
        raise ImageError(f'step {step} < width*bytes per pixel {width}*{pixel_bytes} = '
                         f'{width * pixel_bytes}')
    if step % depth:
        raise ImageError(f'step {step} is not a multiple of {depth}, the size of one '
                         f'{encoding} value')
    if len(msg.data) != step * height:
        raise ImageError(f'data has {len(msg.data)} bytes, expected step*height = '
                         f'{step * height}')
    flat = np.frombuffer(bytes(msg.data) if not isinstance(msg.data, (bytes, bytearray))
                         else msg.data, dtype=np.uint8)
    rows = flat.reshape(height, step)[:, :width * pixel_bytes]
    if depth == 2:
        # Any non-zero is_bigendian means big-endian; astype gives native uint16 values.
        order = '>u2' if msg.is_bigendian else '<u2'
        rows = np.ascontiguousarray(rows).view(order).astype(np.uint16)
    pixels = rows.reshape(height, width, channels)
    if channels == 1:
        pixels = pixels[:, :, 0]
    rgb = np.ascontiguousarray(pixels)
    if conversion is not None:
        rgb = cv2.cvtColor(rgb, conversion)
    if depth == 2:
        # cv_bridge: convertTo(CV_8U, 255/65535) after the colour conversion (rounded).
        rgb = cv2.convertScaleAbs(rgb, alpha=SCALE_16_TO_8)
    return rgb


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


# REP 118 depth images: 32FC1 in metres (NaN invalid), 16UC1 in millimetres (0 invalid).
DEPTH_ENCODINGS = {'32fc1': ('f4', 1.0), '16uc1': ('u2', 0.001)}


def depth_to_metres(msg: Image) -> np.ndarray:
    """
    Return a depth Image (REP 118) as HxW float32 metres, NaN where invalid.

    32FC1 is taken as metres (NaN, 0 and negative invalid; +inf kept: beyond range),
    16UC1 as millimetres (0 invalid). Raises ImageError for any other encoding or a
    message whose size does not add up.
    """
    encoding = msg.encoding.lower()
    if encoding not in DEPTH_ENCODINGS:
        raise ImageError(f'depth image encoding {msg.encoding!r} is not a depth encoding '
                         '(REP 118: 32FC1 metres or 16UC1 millimetres)')
    kind, scale = DEPTH_ENCODINGS[encoding]
    size = int(kind[1])
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f'empty depth image {width}x{height}')
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ImageError(f'depth image {width}x{height} exceeds {MAX_SIDE} px per side')
    if step < width * size or step % size:
        raise ImageError(f'step {step} does not hold {width} {msg.encoding} values '
                         f'of {size} bytes')
    if len(msg.data) != step * height:
        raise ImageError(f'data has {len(msg.data)} bytes, expected step*height = '
                         f'{step * height}')
    flat = np.frombuffer(msg.data, dtype=np.uint8)     # bytes or array('B'): no copy
    order = ('>' if msg.is_bigendian else '<') + kind
    rows = np.ascontiguousarray(flat.reshape(height, step)[:, :width * size])
    values = rows.view(order).astype(np.float32)
    if scale != 1.0:
        values *= np.float32(scale)
    with np.errstate(invalid='ignore'):
        values[~(values > 0.0)] = np.nan
    return values


def metres_to_depth_image(depth: np.ndarray, stamp, frame_id: str,
                          encoding: str = '32FC1') -> Image:
    """
    Build a depth Image (REP 118) from HxW metres, NaN invalid.

    32FC1: float32 metres, NaN kept. 16UC1: uint16 millimetres (rounded), invalid and
    what does not fit 16 bits (over 65.535 m) 0.
    """
    msg = Image()
    msg.header.stamp = stamp
    msg.header.frame_id = frame_id
    msg.height, msg.width = int(depth.shape[0]), int(depth.shape[1])
    msg.is_bigendian = 0
    if encoding.lower() == '32fc1':
        msg.encoding = '32FC1'
        msg.step = msg.width * 4
        msg.data = np.ascontiguousarray(depth, dtype='<f4').tobytes()
    elif encoding.lower() == '16uc1':
        msg.encoding = '16UC1'
        msg.step = msg.width * 2
        with np.errstate(invalid='ignore'):
            mm = np.rint(np.asarray(depth, dtype=np.float64) * 1000.0)
            mm[~((mm > 0.0) & (mm <= 65535.0))] = 0.0
        msg.data = mm.astype('<u2').tobytes()
    else:
        raise ValueError(f'depth encoding {encoding!r}: 32FC1 or 16UC1')
    return msg
