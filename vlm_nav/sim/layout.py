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
Seeded indoor layouts: an arena, interior walls with openings, labelled objects.

Pure Python + numpy (no pybullet, no ROS). Every number in a Layout comes from
``numpy.random.default_rng(seed)``, so a seed reproduces the same world.
Coordinates: metres, x/y in the world (= odom) frame, arena centred on the origin.
"""

from dataclasses import dataclass, field
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np

Color = Tuple[float, float, float]

COLORS = {
    'red': (0.85, 0.10, 0.10),
    'green': (0.10, 0.70, 0.15),
    'blue': (0.10, 0.25, 0.90),
    'yellow': (0.95, 0.85, 0.10),
}
SHAPES = ('ball', 'box', 'cone', 'chair')

# The names a user can give as a target. Order is fixed: trainers may index it.
OBJECT_LABELS: List[str] = (
    [f'{c} {s}' for c in COLORS for s in SHAPES] + ['door', 'plant'])

# 2-D footprint radius of each shape (bounding circle), metres. Chairs and boxes
# are approximated by their bounding circle for collisions: conservative.
FOOTPRINT_RADIUS = {'ball': 0.16, 'box': 0.26, 'cone': 0.18, 'chair': 0.31, 'plant': 0.26}

WALL_THICKNESS = 0.1
DOOR_WIDTH = 0.9
DOOR_THICKNESS = 0.05
ROBOT_RADIUS = 0.2


@dataclass(frozen=True)
class Rect:
    """Axis-aligned box: centre, half extents (x, y), height, colour."""

    cx: float
    cy: float
    hx: float
    hy: float
    height: float
    color: Color


@dataclass(frozen=True)
class ObjectSpec:
    """One labelled object. (x, y) is its centre on the floor; door: centre of its face."""

    label: str
    x: float
    y: float
    yaw: float
    radius: float                      # 2-D bounding radius used for collisions
    color: Color
    # Door only: the thin panel as an axis-aligned rect (collision + drawing).
    panel: Optional[Rect] = None

    @property
    def shape(self) -> str:
        return self.label.split()[-1]


@dataclass
class Layout:
    seed: int
    width: float                       # arena extent along x, inner faces of walls
    depth: float                       # arena extent along y
    walls: List[Rect]
    objects: List[ObjectSpec]
    floor_color: Color
    wall_color: Color
    light_direction: Tuple[float, float, float]
    light_ambient: float
    light_diffuse: float
    camera_height: float
    camera_pitch_deg: float
    # Openings in interior walls: (x, y) of each gap centre (kept free of objects).
    openings: List[Tuple[float, float]] = field(default_factory=list)

    @property
    def labels(self) -> List[str]:
        return [o.label for o in self.objects]

    def object(self, label: str) -> ObjectSpec:  # noqa: A003 - callers spell it so
        for obj in self.objects:
            if obj.label == label:
                return obj
        raise KeyError(label)


def _muted(rng: np.random.Generator, lo: float, hi: float, sat: float) -> Color:
    """Return a desaturated colour, so walls and floors never look like a target colour."""
    base = rng.uniform(lo, hi)
    tint = rng.uniform(-sat, sat, size=3)
    return tuple(float(np.clip(base + t, 0.0, 1.0)) for t in tint)


def _interior_walls(rng: np.random.Generator, hw: float, hd: float, color: Color,
                    height: float, count: int
                    ) -> Tuple[List[Rect], List[Tuple[float, float]]]:
    """
    Make 0-2 interior walls, each with one opening, that never seal off a room.

    The first spans the arena; the second is perpendicular, runs from the first
    to the outer wall on one side, and is kept away from the first one's gap.
    """
    walls: List[Rect] = []
    openings: List[Tuple[float, float]] = []
    t = WALL_THICKNESS / 2.0
    if count == 0:
        return walls, openings

    def split(along_x: bool, fixed: float, lo: float, hi: float) -> float:
        # A wall from lo to hi (along x if along_x) at coordinate fixed, with a gap.
        gap = rng.uniform(1.2, 1.6)
        centre = rng.uniform(lo + 0.4 + gap / 2, hi - 0.4 - gap / 2)
        for a, b in ((lo, centre - gap / 2), (centre + gap / 2, hi)):
            mid, half = (a + b) / 2, (b - a) / 2
            if along_x:
                walls.append(Rect(mid, fixed, half, t, height, color))
            else:
                walls.append(Rect(fixed, mid, t, half, height, color))
        openings.append((centre, fixed) if along_x else (fixed, centre))
        return centre

    first_along_x = bool(rng.integers(2))
    h_main, h_cross = (hd, hw) if first_along_x else (hw, hd)
    pos = rng.uniform(-0.35, 0.35) * 2 * h_main
    gap_c = split(first_along_x, pos, -h_cross, h_cross)
    if count == 1:
        return walls, openings
    # Second wall: perpendicular, on the bigger side of the first one.
    side_lo, side_hi = (pos + t, h_main) if pos < 0 else (-h_main, pos - t)
    for _ in range(50):
        pos2 = rng.uniform(-0.6, 0.6) * h_cross
        if abs(pos2 - gap_c) > 1.6:
            break
    split(not first_along_x, pos2, side_lo, side_hi)
    return walls, openings


def _free_of_walls(x: float, y: float, r: float, walls: Sequence[Rect]) -> bool:
    for w in walls:
        dx = max(abs(x - w.cx) - w.hx, 0.0)
        dy = max(abs(y - w.cy) - w.hy, 0.0)
        if dx * dx + dy * dy < r * r:
            return False
    return True


def _place_door(rng: np.random.Generator, hw: float, hd: float,
                walls: Sequence[Rect]) -> ObjectSpec:
    """Place a brown panel on the inner face of an outer wall, away from corners and joints."""
    color = tuple(float(c) for c in np.clip(
        np.array([0.45, 0.27, 0.12]) + rng.uniform(-0.06, 0.06, 3), 0, 1))
    for _ in range(200):
        side = int(rng.integers(4))
        along = hw if side < 2 else hd
        s = rng.uniform(-along + 0.9, along - 0.9)
        t = DOOR_THICKNESS / 2
        if side == 0:      # wall at y = -hd, door faces +y
            x, y, yaw = s, -hd + t, math.pi / 2
        elif side == 1:    # y = +hd
            x, y, yaw = s, hd - t, -math.pi / 2
        elif side == 2:    # x = -hw
            x, y, yaw = -hw + t, s, 0.0
        else:              # x = +hw
            x, y, yaw = hw - t, s, math.pi
        # Keep interior walls' ends at least a door width away from the panel.
        if not _free_of_walls(x, y, DOOR_WIDTH / 2 + 0.3, walls[4:]):
            continue
        hx, hy = (DOOR_WIDTH / 2, t) if side < 2 else (t, DOOR_WIDTH / 2)
        panel = Rect(x, y, hx, hy, 0.0, color)   # height filled in by make_layout
        return ObjectSpec('door', x, y, yaw, DOOR_WIDTH / 2, color, panel)
    raise RuntimeError('no room for a door')


def make_layout(seed: int, min_size: float = 6.0, max_size: float = 10.0,
                min_objects: int = 3, max_objects: int = 6,
                max_interior_walls: int = 2) -> Layout:
    """Build the layout for ``seed``: same seed, same layout, on any machine."""
    rng = np.random.default_rng(seed)
    width = round(float(rng.uniform(min_size, max_size)), 2)
    depth = round(float(rng.uniform(min_size, max_size)), 2)
    hw, hd = width / 2, depth / 2
    wall_h = float(rng.uniform(1.6, 2.2))
    wall_color = _muted(rng, 0.55, 0.9, 0.08)
    floor_color = _muted(rng, 0.3, 0.65, 0.07)
    t = WALL_THICKNESS / 2
    walls = [
        Rect(0.0, -hd - t, hw + 2 * t, t, wall_h, wall_color),
        Rect(0.0, hd + t, hw + 2 * t, t, wall_h, wall_color),
        Rect(-hw - t, 0.0, t, hd + 2 * t, wall_h, wall_color),
        Rect(hw + t, 0.0, t, hd + 2 * t, wall_h, wall_color),
    ]
    inner_color = _muted(rng, 0.5, 0.9, 0.08)
    n_inner = int(rng.integers(0, max_interior_walls + 1))
    inner, openings = _interior_walls(rng, hw, hd, inner_color, wall_h, n_inner)
    walls += inner

    n_obj = int(rng.integers(min_objects, max_objects + 1))
    labels = [OBJECT_LABELS[i] for i in rng.permutation(len(OBJECT_LABELS))[:n_obj]]
    # The door goes first: it is pinned to a wall, the others fit around it.
    labels.sort(key=lambda lab: lab != 'door')
    objects: List[ObjectSpec] = []
    for label in labels:
        if label == 'door':
            door = _place_door(rng, hw, hd, walls)
            panel = Rect(door.panel.cx, door.panel.cy, door.panel.hx, door.panel.hy,
                         min(2.0, wall_h - 0.1), door.color)
            objects.append(ObjectSpec('door', door.x, door.y, door.yaw, door.radius,
                                      door.color, panel))
            continue
        shape = label.split()[-1]
        r = FOOTPRINT_RADIUS[shape]
        color = (0.18, 0.55, 0.2) if label == 'plant' else COLORS[label.split()[0]]
        for _ in range(500):
            x = float(rng.uniform(-hw + r + 0.15, hw - r - 0.15))
            y = float(rng.uniform(-hd + r + 0.15, hd - r - 0.15))
            if not _free_of_walls(x, y, r + 0.15, walls):
                continue
            # Keep openings passable and leave a robot's width between objects.
            if any(math.hypot(x - ox, y - oy) < r + 0.9 for ox, oy in openings):
                continue
            if any(math.hypot(x - o.x, y - o.y) < r + o.radius + 2 * ROBOT_RADIUS + 0.1
                   for o in objects):
                continue
            break
        else:
            continue  # crowded: drop this object (rare; layout stays valid)
        objects.append(ObjectSpec(label, x, y, float(rng.uniform(-math.pi, math.pi)),
                                  r, color))

    az = rng.uniform(-math.pi, math.pi)
    el = rng.uniform(math.radians(35), math.radians(75))
    light = (math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el))
    return Layout(
        seed=int(seed), width=width, depth=depth, walls=walls, objects=objects,
        floor_color=floor_color, wall_color=wall_color,
        light_direction=tuple(float(v) for v in light),
        light_ambient=float(rng.uniform(0.45, 0.7)),
        light_diffuse=float(rng.uniform(0.3, 0.55)),
        camera_height=float(rng.uniform(0.4, 0.55)),
        camera_pitch_deg=float(rng.uniform(-14.0, -8.0)),
        openings=openings,
    )
