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
The navigator's debug picture: the camera frame with the model's answers and the decision.

Plain OpenCV + numpy, no ROS: the navigator node publishes what draw_debug returns as
vlm_nav/debug_image, so someone watching in rviz or Foxglove sees why the robot turns.
Its markers of what was seen where and its map of the scan are built beside this, in
vlm_nav/ros/markers.py.
"""

import math
from typing import Optional

import cv2
import numpy as np

from vlm_nav.perception.vocabulary import BEARINGS, Observation

_FONT = cv2.FONT_HERSHEY_SIMPLEX
_GREEN, _RED, _YELLOW, _WHITE = (40, 200, 40), (230, 50, 50), (240, 200, 0), (255, 255, 255)


def _text(img: np.ndarray, text: str, org, scale: float = 0.45, color=_WHITE) -> None:
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, color, 1, cv2.LINE_AA)


def _wrap(text: str, width: int):
    words, line = text.split(), ''
    for word in words:
        if line and len(line) + 1 + len(word) > width:
            yield line
            line = word
        else:
            line = f'{line} {word}' if line else word
    if line:
        yield line


def draw_debug(rgb: np.ndarray, obs: Optional[Observation], phase: str, reason: str,
               linear: float, angular: float, target: str = '',
               hfov_rad: float = math.radians(60.0), size: int = 384) -> np.ndarray:
    """
    Draw an RGB picture (size x size + a text panel): the frame, answers and decision.

    Drawn: the target's expected bearing as a vertical line (colour = P(visible)), the
    image thirds with their bearing probabilities, bars for P(visible), P(near) and
    P(path clear), the phase, the command (arrow: forward speed and turn) and the reason.
    """
    frame = cv2.resize(np.ascontiguousarray(rgb[:, :, :3]), (size, size),
                       interpolation=cv2.INTER_NEAREST)
    panel_h = 120
    img = np.zeros((size + panel_h, size, 3), dtype=np.uint8)
    img[:size] = frame
    for k in (1, 2):                                   # image thirds
        x = k * size // 3
        cv2.line(img, (x, 0), (x, size), (200, 200, 200), 1)
    if obs is not None and target:
        for k, label in enumerate(BEARINGS):
            p = obs.bearing_probs.get(label, 0.0)
            _text(img, f'{label} {p:.2f}', (k * size // 3 + 6, 18))
        bearing = obs.expected_bearing(hfov_rad)
        # +bearing = left; pinhole: x = centre - f tan(bearing)
        u = 0.5 - 0.5 * math.tan(bearing) / math.tan(hfov_rad / 2.0)
        x = int(round(min(max(u, 0.0), 1.0) * (size - 1)))
        color = _GREEN if obs.visible_prob >= 0.6 else (_YELLOW if obs.visible_prob >= 0.4
                                                        else _RED)
        cv2.line(img, (x, 28), (x, size - 1), color, 2)
        bars = [('visible', obs.visible_prob), ('near', obs.near_prob()),
                ('path clear', obs.path_clear_prob)]
    else:
        bars = [('path clear', obs.path_clear_prob)] if obs is not None else []
    for i, (name, p) in enumerate(bars):
        y = size - 14 - 18 * (len(bars) - 1 - i)
        cv2.rectangle(img, (6, y - 10), (6 + 100, y + 2), (60, 60, 60), -1)
        cv2.rectangle(img, (6, y - 10), (6 + int(100 * min(max(p, 0.0), 1.0)), y + 2),
                      _GREEN if p >= 0.5 else _RED, -1)
        _text(img, f'P({name}) {p:.2f}', (112, y), 0.42)
    # The command: an arrow from the bottom centre, length ~ speed, bent by the turn.
    base = (size // 2, size - 8)
    length = 20 + 150 * abs(linear)
    angle = math.pi / 2 + 0.6 * angular             # + angular = turn left
    tip = (int(base[0] + length * math.cos(angle)), int(base[1] - length * math.sin(angle)))
    cv2.arrowedLine(img, base, tip, _YELLOW, 3, tipLength=0.3)
    _text(img, f'{phase}  v={linear:+.2f} m/s  w={angular:+.2f} rad/s', (6, size + 18), 0.5,
          _YELLOW)
    lines = ([f'target: {target}'] if target else []) + list(_wrap(reason, 58))
    for i, line in enumerate(lines[:5]):
        _text(img, line, (6, size + 38 + 18 * i), 0.42)
    return img
