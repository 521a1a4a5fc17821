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
The scan map forgets what moved away, and keeps walls that beams only graze.

A synthetic raycast of line segments (walls, the sides of a box) for a full-circle lidar
and for a 60 deg scan like the depth camera's virtual one.
"""

import math

import numpy as np
import pytest

from vlm_nav.nav.scan_map import Scan, ScanMap


def raycast(x, y, directions, segments, range_max=8.0):
    """Return the range from (x, y) along each world direction to the nearest segment."""
    dx, dy = np.cos(directions), np.sin(directions)
    hits = np.full(len(directions), np.inf)
    for (ax, ay), (bx, by) in segments:
        ex, ey = bx - ax, by - ay
        den = dx * ey - dy * ex
        with np.errstate(divide='ignore', invalid='ignore'):
            t = ((ax - x) * ey - (ay - y) * ex) / den        # along the beam
            u = ((ax - x) * dy - (ay - y) * dx) / den        # along the segment
        ok = np.isfinite(t) & (t > 0.0) & (u >= 0.0) & (u <= 1.0) & (t < hits)
        hits = np.where(ok, t, hits)
    return np.where(hits <= range_max, hits, np.inf)


def box(x0, x1, y0, y1):
    return [((x0, y0), (x1, y0)), ((x1, y0), (x1, y1)), ((x1, y1), (x0, y1)),
            ((x0, y1), (x0, y0))]


def scan_at(pose, segments, beams=180, fov=2.0 * math.pi, range_max=8.0):
    """Return a Scan of `beams` beams over `fov` centred ahead, taken at pose."""
    x, y, yaw = pose
    step = fov / beams
    angle_min = -math.pi if fov >= 2.0 * math.pi else -fov / 2.0 + step / 2.0
    angles = angle_min + np.arange(beams) * step
    ranges = raycast(x, y, yaw + angles, segments, range_max)
    return Scan(angle_min, step, ranges, range_max, pose=pose)


# A room 8 x 4 m split at x = 4 by a wall with a 1 m doorway (y 1.5..2.5).
ROOM = box(0.0, 8.0, 0.0, 4.0) + [((4.0, 0.0), (4.0, 1.5)), ((4.0, 2.5), (4.0, 4.0))]
PERSON = box(3.8, 4.2, 1.55, 2.45)          # someone standing in the doorway


def _beyond_doorway(smap, planned):
    """Tell whether a plan goes to something beyond the doorway, through it."""
    if planned is None:
        return False
    path, goal = planned
    gx, _ = smap.centre(*goal)
    return gx > 4.0 and path[-1][0] > 3.5


@pytest.mark.parametrize('fov_deg', [360.0, 60.0])
def test_an_obstacle_that_moves_away_is_forgotten_and_the_doorway_used(fov_deg):
    """
    A person blocks the doorway for a while and leaves; the map opens and the plan uses it.

    While the person stands there the map holds them for good (the room beyond is unknown
    and out of reach); one scan after they leave does not clear them (hysteresis), a
    second of scans does, and the plan then goes to the room beyond, through the doorway.
    """
    fov = math.radians(fov_deg)
    pose = (2.0, 2.0, 0.0)                   # facing the doorway
    smap = ScanMap()
    for k in range(12):                      # a look all round, then 3 s at the doorway
        turned = (2.0, 2.0, k * math.pi / 6.0)
        smap.integrate(turned, scan_at(turned, ROOM + PERSON, fov=fov))
    for _ in range(30):
        smap.integrate(pose, scan_at(pose, ROOM + PERSON, fov=fov))
    person = smap.cell(np.array([3.85]), np.array([2.0]))
    assert smap.occupied[person].all()
    smap.looked[:] = True                    # only where the map ends is left to look at
    assert not _beyond_doorway(smap, smap.plan(pose))
    doorway = smap.cell(np.array([4.0]), np.array([2.0]))
    assert not smap._traversable()[0][doorway].any()
    smap.integrate(pose, scan_at(pose, ROOM, fov=fov))          # the person has gone
    assert smap.occupied[person].all(), 'one scan cleared a cell seen for 3 s'
    for _ in range(10):
        smap.integrate(pose, scan_at(pose, ROOM, fov=fov))
    assert not smap.occupied[person].any()
    gap_i, gap_j = smap.cell(np.array([4.05] * 5), np.linspace(1.8, 2.2, 5))
    assert not smap.occupied[gap_i, gap_j].any()
    planned = smap.plan(pose)
    assert _beyond_doorway(smap, planned), planned
    assert smap._traversable()[0][doorway].all()        # the robot fits through again
    # The doorway's walls stay.
    for wy in (0.5, 1.0, 3.0, 3.5):
        assert smap.occupied[smap.cell(np.array([4.0]), np.array([wy]))].all(), wy


@pytest.mark.parametrize('fov_deg', [360.0, 60.0])
@pytest.mark.parametrize('inset', [0.01, 0.05, 0.09])
def test_beams_grazing_a_wall_do_not_wear_holes_in_it(fov_deg, inset):
    """
    Driving along a wall 0.45 m beside it, the wall's cells stay occupied.

    Far ahead the beams meet the wall at a few degrees and cross the free part of the cells
    its face cuts (inset: where the face lies in its row of cells), then end on the wall
    further on. Every column of the wall that was mapped occupied is still occupied at the
    end, with no free cell on the wall's line.
    """
    wall_y = -0.4 - inset                    # the robot starts at (0, 0): cells on 0.1 m
    segments = [((-2.0, wall_y), (12.0, wall_y))]
    smap = ScanMap()
    ever = np.zeros_like(smap.occupied)
    for k in range(60):
        pose = (0.1 * k, 0.0, 0.0)
        smap.integrate(pose, scan_at(pose, segments, beams=180 if fov_deg > 100 else 64,
                                     fov=math.radians(fov_deg)))
        ever |= smap.occupied
    xs = np.arange(0.05, 8.0, 0.1)
    i, j = smap.cell(xs, np.full(len(xs), wall_y))
    mapped = ever[i, j]
    assert mapped.sum() >= 40
    assert smap.occupied[i, j][mapped].all(), xs[mapped & ~smap.occupied[i, j]]
    assert not smap.free[i, j].any()
