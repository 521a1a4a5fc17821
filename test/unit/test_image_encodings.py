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
The camera encodings cv_bridge converts to rgb8: 16-bit, YUV 4:2:2 and Bayer.

Each message is built from known pixels (padded rows, odd sizes where the encoding allows
them, both byte orders for 16-bit) and its conversion must equal OpenCV's own conversion of
the same pixels, with 16-bit values scaled as cv_bridge scales them: x * 255 / 65535,
rounded to the nearest integer.
"""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from vlm_nav.ros.image import image_to_rgb, ImageError

# cv_bridge's conversion table (cv_bridge.cpp, getConversionCodes): ROS Bayer pattern to
# OpenCV code, whose names are shifted by one pixel.
CV_BRIDGE_BAYER = {'rggb': cv2.COLOR_BayerBG2RGB, 'bggr': cv2.COLOR_BayerRG2RGB,
                   'gbrg': cv2.COLOR_BayerGR2RGB, 'grbg': cv2.COLOR_BayerGB2RGB}
COLOUR_16 = {'mono16': cv2.COLOR_GRAY2RGB, 'rgb16': None, 'bgr16': cv2.COLOR_BGR2RGB,
             'rgba16': cv2.COLOR_RGBA2RGB, 'bgra16': cv2.COLOR_BGRA2RGB}
YUV = {'yuv422': cv2.COLOR_YUV2RGB_UYVY, 'uyvy': cv2.COLOR_YUV2RGB_UYVY,
       'yuv422_yuy2': cv2.COLOR_YUV2RGB_YUY2, 'yuyv': cv2.COLOR_YUV2RGB_YUY2}


def _message(encoding: str, pixels: np.ndarray, pad: int = 0, bigendian: int = 0) -> Image:
    """Build an Image from HxW or HxWxC pixels, each row followed by `pad` garbage bytes."""
    order = '>' if bigendian else '<'
    values = pixels.astype(pixels.dtype.newbyteorder(order))
    rows = values.reshape(pixels.shape[0], -1).view(np.uint8)
    garbage = np.random.default_rng(1).integers(0, 256, (rows.shape[0], pad), np.uint8)
    data = np.concatenate([rows, garbage], axis=1)
    return Image(height=pixels.shape[0], width=pixels.shape[1], encoding=encoding,
                 is_bigendian=bigendian, step=data.shape[1], data=data.tobytes())


def _scaled(values: np.ndarray) -> np.ndarray:
    """Scale 16-bit values to 8 bits as cv_bridge does: convertTo(CV_8U, 255/65535)."""
    return np.rint(values.astype(np.float64) * 255.0 / 65535.0).astype(np.uint8)


def _random(shape, dtype) -> np.ndarray:
    return np.random.default_rng(7).integers(0, np.iinfo(dtype).max + 1, shape, dtype)


def _mosaic(pattern: str, colour, height: int, width: int, dtype) -> np.ndarray:
    """Lay a flat colour field out as a Bayer mosaic; pattern names the top-left 2x2."""
    mosaic = np.zeros((height, width), dtype)
    value = dict(zip('rgb', colour))
    for index, channel in enumerate(pattern):
        mosaic[index // 2::2, index % 2::2] = value[channel]
    return mosaic


# ---- 16-bit mono and colour ------------------------------------------------------------------
@pytest.mark.parametrize('bigendian', [0, 1])
@pytest.mark.parametrize('encoding', sorted(COLOUR_16))
def test_16bit_colour_equals_opencv_then_cv_bridge_scaling(encoding, bigendian):
    channels = {'mono16': 1, 'rgb16': 3, 'bgr16': 3}.get(encoding, 4)
    shape = (5, 7) if channels == 1 else (5, 7, channels)
    pixels = _random(shape, np.uint16)
    out = image_to_rgb(_message(encoding, pixels, pad=6, bigendian=bigendian))
    code = COLOUR_16[encoding]
    expected = _scaled(pixels if code is None else cv2.cvtColor(pixels, code))
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    assert np.array_equal(out, expected)


def test_16bit_byte_order_comes_from_is_bigendian():
    pixels = _random((4, 3, 3), np.uint16)
    little = image_to_rgb(_message('rgb16', pixels, bigendian=0))
    big = image_to_rgb(_message('rgb16', pixels, bigendian=1))
    assert np.array_equal(little, big)
    # The same bytes read with the other byte order are other pixels.
    swapped = _message('rgb16', pixels, bigendian=0)
    swapped.is_bigendian = 1
    assert np.array_equal(image_to_rgb(swapped), _scaled(pixels.byteswap()))


def test_16bit_scaling_is_cv_bridge_255_over_65535_rounded():
    every = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    out = image_to_rgb(_message('mono16', every))[:, :, 0]
    assert np.array_equal(out, np.rint(every / 257.0).astype(np.uint8))
    # Values where a division by 256 would round the other way: cv_bridge divides by 257.
    values = np.array([[0, 128, 129, 385, 32896, 65407, 65535]], np.uint16)
    out = image_to_rgb(_message('mono16', values))[0, :, 0]
    assert out.tolist() == [0, 0, 1, 1, 128, 255, 255]
    assert np.rint(values / 256.0)[0, 3] == 2


# ---- YUV 4:2:2 ------------------------------------------------------------------------------
@pytest.mark.parametrize('encoding', sorted(YUV))
def test_yuv422_equals_opencv(encoding):
    pixels = _random((5, 8, 2), np.uint8)       # odd height, even width, odd row padding
    out = image_to_rgb(_message(encoding, pixels, pad=3))
    assert np.array_equal(out, cv2.cvtColor(pixels, YUV[encoding]))


def test_uyvy_and_yuyv_read_the_bytes_in_their_own_order():
    grey = np.array([[[128, 60], [128, 200]]], np.uint8)    # U Y0 V Y1: two greys
    uyvy = image_to_rgb(_message('yuv422', grey))
    assert uyvy[0, 0, 0] == uyvy[0, 0, 1] == uyvy[0, 0, 2] < uyvy[0, 1, 0]
    yuyv = image_to_rgb(_message('yuv422_yuy2', grey[:, :, ::-1].copy()))   # Y0 U Y1 V
    assert np.array_equal(yuyv, uyvy)


# ---- Bayer ----------------------------------------------------------------------------------
@pytest.mark.parametrize('bigendian', [0, 1])
@pytest.mark.parametrize('bits', [8, 16])
@pytest.mark.parametrize('pattern', sorted(CV_BRIDGE_BAYER))
def test_bayer_equals_opencv_with_cv_bridge_codes(pattern, bits, bigendian):
    dtype = np.uint8 if bits == 8 else np.uint16
    mosaic = _random((7, 9), dtype)
    out = image_to_rgb(_message(f'bayer_{pattern}{bits}', mosaic, pad=4, bigendian=bigendian))
    # cv_bridge demosaics at the message's depth, then scales 16-bit values to 8 bits.
    demosaiced = cv2.cvtColor(mosaic, CV_BRIDGE_BAYER[pattern])
    expected = demosaiced if bits == 8 else _scaled(demosaiced)
    assert np.array_equal(out, expected)


@pytest.mark.parametrize('bits', [8, 16])
@pytest.mark.parametrize('pattern', sorted(CV_BRIDGE_BAYER))
def test_bayer_flat_colour_field_comes_out_that_colour(pattern, bits):
    colour = (200, 100, 50)
    dtype, scale = (np.uint8, 1) if bits == 8 else (np.uint16, 257)
    mosaic = _mosaic(pattern, [c * scale for c in colour], 7, 10, dtype)
    out = image_to_rgb(_message(f'bayer_{pattern}{bits}', mosaic, pad=2, bigendian=1))
    assert out.shape == (7, 10, 3)
    assert np.unique(out.reshape(-1, 3), axis=0).tolist() == [list(colour)]


# ---- refusals -------------------------------------------------------------------------------
NEW = sorted(COLOUR_16) + sorted(YUV) + [f'bayer_{p}{b}' for p in CV_BRIDGE_BAYER
                                         for b in (8, 16)]


def _valid(encoding: str) -> Image:
    if encoding in YUV:
        return _message(encoding, _random((4, 6, 2), np.uint8), pad=2)
    dtype = np.uint16 if encoding.endswith('16') else np.uint8
    channels = {'rgb16': 3, 'bgr16': 3, 'rgba16': 4, 'bgra16': 4}.get(encoding, 1)
    shape = (4, 6) if channels == 1 else (4, 6, channels)
    return _message(encoding, _random(shape, dtype), pad=2)


@pytest.mark.parametrize('encoding', NEW)
def test_short_and_long_data_are_refused(encoding):
    msg = _valid(encoding)
    assert image_to_rgb(msg).shape == (4, 6, 3)
    expected = msg.step * msg.height
    for data in (bytes(msg.data)[:-1], bytes(msg.data) + b'\0'):
        msg.data = data
        with pytest.raises(ImageError, match=f'data has {len(data)} bytes, expected '
                                             rf'step\*height = {expected}'):
            image_to_rgb(msg)


@pytest.mark.parametrize('encoding', NEW)
def test_step_shorter_than_a_row_is_refused(encoding):
    msg = _valid(encoding)
    pixel_bytes = (msg.step - 2) // msg.width
    msg.step = msg.width * pixel_bytes - 2
    msg.data = bytes(msg.step * msg.height)
    with pytest.raises(ImageError, match=rf'step {msg.step} < width\*bytes per pixel '
                                         rf'6\*{pixel_bytes} = {6 * pixel_bytes}'):
        image_to_rgb(msg)


@pytest.mark.parametrize('encoding', ['mono16', 'bgr16', 'bayer_gbrg16'])
def test_16bit_step_that_splits_a_value_is_refused(encoding):
    msg = _valid(encoding)
    msg.step += 1
    msg.data = bytes(msg.step * msg.height)
    with pytest.raises(ImageError, match=f'step {msg.step} is not a multiple of 2'):
        image_to_rgb(msg)


@pytest.mark.parametrize('encoding', sorted(YUV))
def test_yuv422_odd_width_is_refused(encoding):
    msg = _message(encoding, _random((4, 5, 2), np.uint8))
    with pytest.raises(ImageError, match='odd width 5: .*must be even'):
        image_to_rgb(msg)


@pytest.mark.parametrize('size', [(2, 8), (8, 2), (1, 1)])
def test_bayer_too_small_to_demosaic_is_refused(size):
    """Refuse Bayer frames below 3x3: OpenCV demosaics them to black whatever the data."""
    msg = _message('bayer_rggb8', _random(size, np.uint8))
    with pytest.raises(ImageError, match=f'{size[1]}x{size[0]} is too small to demosaic'):
        image_to_rgb(msg)


@pytest.mark.parametrize('encoding', ['bayer_rggb', 'yuv420', 'rgb32', '16UC1'])
def test_encodings_cv_bridge_does_not_convert_to_rgb_stay_refused(encoding):
    msg = Image(height=2, width=2, encoding=encoding, step=8, data=bytes(16))
    with pytest.raises(ImageError, match='unsupported encoding'):
        image_to_rgb(msg)
