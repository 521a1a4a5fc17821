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
A map from a planar range scan, for exploring where the camera has not looked yet.

Plain numpy/scipy, no ROS. The navigator uses it when the robot has a 2-D lidar
(sensor_msgs/LaserScan on ``scan``): the scan says where walls and things are, the
camera's model says which of them is the target. Three layers on one grid in the
odometry frame:

- occupancy (log-odds from the scan's beams: free along each beam, occupied at its end);
- what the camera has looked at: occupied cells that were inside the camera's field of
  view, in line of sight (nearer than the beam toward them) and close enough for the
  model to see a small object there (``view_range_m``; long walls, where only a door can
  be, count from ``wall_view_range_m``);
- what the camera has had in view from any range (what a look round turns to);
- what was given up: cells a viewpoint reached could not see (behind something).

Exploring = looking at every occupied cell and frontier (free next to unknown) the camera
has not looked at yet: turn over what of it is in sight (unlooked_bearings); when none
is, take the cheapest path (Dijkstra over the inflated free cells, scipy's csgraph) to a
viewpoint of the nearest of it, and look again. Walls are where a door
target can be and things stand next to them, so they are looked at too.

Why a grid of our own and not nav2's costmap: nav2 is not on PyPI (the pip path has no
ROS distro), and the planner here needs the camera-coverage layer, which a costmap
does not keep.
"""

from dataclasses import dataclass
import math
from typing import List, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

Pose = Tuple[float, float, float]

_LOG_FREE, _LOG_OCC, _LOG_MIN, _LOG_MAX = -0.4, 0.85, -2.0, 3.5
_OCCUPIED, _FREE = 0.6, -0.6          # log-odds above / below which a cell is known
_RELEASE = 0.0                        # ... an occupied cell stays so down to this
# An occupied cell is missed only by a beam passing within _MISS_ACROSS cells of its centre,
# ending more than _MISS_BEYOND cells beyond it and not within _MISS_GRAZING_RAD of the line
# its occupied neighbours draw; each such scan takes _LOG_MISS.
_MISS_ACROSS, _MISS_BEYOND, _MISS_GRAZING_RAD, _LOG_MISS = 0.4, 2.0, math.radians(30.0), -0.4
_MISSES_TO_CLEAR = int(math.ceil((_LOG_MAX - _RELEASE) / -_LOG_MISS))
_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connected components


@dataclass
class Scan:
    """One planar scan in the robot's frame (sensor_msgs/LaserScan's fields)."""

    angle_min: float
    angle_increment: float
    ranges: np.ndarray               # metres; inf / nan / outside [range_min, range_max] =
    range_max: float                 # no return
    range_min: float = 0.0
    pose: Optional[Pose] = None      # odometry pose when taken (None: the decision's pose)

    @property
    def angles(self) -> np.ndarray:
        return self.angle_min + np.arange(len(self.ranges)) * self.angle_increment

    def valid(self) -> np.ndarray:
        r = np.asarray(self.ranges, dtype=float)
        with np.errstate(invalid='ignore'):
            return np.isfinite(r) & (r >= self.range_min) & (r <= self.range_max)

    def nearest_side(self, within_m: float) -> float:
        """Return +1 if the nearest return within within_m is left, -1 if right, 0 if none."""
        ok = self.valid()
        r = np.asarray(self.ranges, dtype=float)[ok]
        if not len(r) or r.min() > within_m:
            return 0.0
        return 1.0 if math.sin(self.angles[ok][int(np.argmin(r))]) > 0.0 else -1.0

    def corridor_clear(self, lookahead_m: float, half_width_m: float) -> bool:
        """
        Tell whether no return lies inside the rectangle ahead of the robot.

        The rectangle is lookahead_m long and the robot's width plus margin wide (what the
        model's 'is the path ahead clear?' answers).
        """
        ok = self.valid()
        r = np.asarray(self.ranges, dtype=float)[ok]
        a = self.angles[ok]
        x, y = r * np.cos(a), r * np.sin(a)
        return not bool(np.any((x > 0.0) & (x < lookahead_m) & (np.abs(y) < half_width_m)))

    def range_toward(self, bearings: np.ndarray) -> np.ndarray:
        """Return the range of the beam nearest each bearing (robot frame); inf where no return."""
        n = len(self.ranges)
        idx = np.rint((np.asarray(bearings) - self.angle_min) / self.angle_increment)
        idx = idx.astype(np.int64)
        inside = (idx >= 0) & (idx < n)
        r = np.where(self.valid(), np.asarray(self.ranges, dtype=float), np.inf)
        out = np.full(idx.shape, -np.inf)          # outside the scan's arc: unknown = hidden
        out[inside] = r[idx[inside]]
        return out


# A lidar within this of level (roll 0 or pi, pitch 0) scans the floor plane.
LEVEL_TOLERANCE_RAD = 0.01
# Seen from the base, an offset lidar's beams spread wider where it is nearer a thing than
# the base is: up to this many empty bins between two returns that are within
# _GAP_FILL_M (+ _GAP_FILL_SHARE of their range) of each other are filled in between.
_GAP_FILL_BINS = 3
_GAP_FILL_M, _GAP_FILL_SHARE = 0.1, 0.05


def _wrap(a):
    return (a + math.pi) % (2.0 * math.pi) - math.pi


@dataclass(frozen=True)
class ScanMount:
    """
    Where a planar lidar sits on the robot: its frame's pose in the base frame.

    x, y in metres, yaw in radians (where the lidar's x axis points); upside_down for a
    lidar rolled by pi, whose beams then sweep the other way. Its height does not matter
    to a planar map.
    """

    x: float = 0.0
    y: float = 0.0
    yaw: float = 0.0
    upside_down: bool = False

    @property
    def identity(self) -> bool:
        return self.x == 0.0 and self.y == 0.0 and self.yaw == 0.0 and not self.upside_down

    @classmethod
    def from_values(cls, values: Sequence[float]) -> 'ScanMount':
        """
        Read [x, y, yaw] or [x, y, z, roll, pitch, yaw] (static_transform_publisher's order).

        Raises ValueError, with the reason, for another length, a value that is not finite
        or a lidar that is not level.
        """
        v = [float(a) for a in values]
        if len(v) not in (3, 6):
            raise ValueError(f'{len(v)} values: give [x, y, yaw] or '
                             '[x, y, z, roll, pitch, yaw] (m, rad)')
        if not all(math.isfinite(a) for a in v):
            raise ValueError(f'{v}: not all finite')
        if len(v) == 3:
            return cls(v[0], v[1], _wrap(v[2]))
        x, y, _, roll, pitch, yaw = v
        cr, cp = math.cos(roll), math.cos(pitch)
        # R = Rz(yaw) Ry(pitch) Rx(roll) (REP 103): the lidar's x axis and its z axis's z.
        return cls.from_axes(x, y, math.cos(yaw) * cp, math.sin(yaw) * cp, cp * cr)

    @classmethod
    def from_quaternion(cls, x: float, y: float, qx: float, qy: float, qz: float,
                        qw: float) -> 'ScanMount':
        """Read a transform's translation and rotation (a tf2 lookup's); see from_values."""
        norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
        if not (math.isfinite(norm) and norm > 0.0):
            raise ValueError('rotation is not a quaternion')
        qx, qy, qz, qw = qx / norm, qy / norm, qz / norm, qw / norm
        return cls.from_axes(x, y, 1.0 - 2.0 * (qy * qy + qz * qz),
                             2.0 * (qx * qy + qw * qz), 1.0 - 2.0 * (qx * qx + qy * qy))

    @classmethod
    def from_axes(cls, x: float, y: float, r00: float, r10: float,
                  r22: float) -> 'ScanMount':
        """Build from the rotation's x axis (r00, r10 in the plane) and its z axis's z (r22)."""
        tilt = math.acos(min(1.0, abs(r22)))
        if tilt > LEVEL_TOLERANCE_RAD:
            raise ValueError(
                f'the lidar is tilted {math.degrees(tilt):.1f} deg from level: a planar '
                'map needs pitch 0 and roll 0 or pi (upside down)')
        return cls(float(x), float(y), math.atan2(r10, r00), r22 < 0.0)


def scan_in_base(mount: ScanMount, ranges: Sequence[float], angle_min: float,
                 angle_increment: float, range_max: float, range_min: float = 0.0,
                 pose: Optional[Pose] = None) -> Scan:
    """
    Return a lidar's scan, taken where mount places it on the robot, as a Scan of the base.

    The other arguments are sensor_msgs/LaserScan's fields. At the identity mount the
    scan is kept as it is. Otherwise each return (and each beam with none, at range_max)
    is placed in the base frame, and its range and bearing from the base's origin are
    binned onto beams of the lidar's angular step: the nearest return of a bin wins; a bin
    with only beams that returned nothing reads inf (free to range_max, which grows by the
    lidar's distance from the origin); a few bins between two returns about as far read
    as the line between them (the beams spread wider seen from the base); any other bin no
    beam falls in reads nan (no information; Scan reads it as no return), as does what
    lies in the lidar's shadow seen from the base (behind something near). A full-circle
    scan's beams start at -pi; a partial one's span its arc from the base's origin,
    starting in [-pi, pi) (bearings past pi read as outside it). An upside-down lidar's
    beams sweep the other way.
    """
    r = np.asarray(ranges, dtype=float)
    if mount.identity:
        return Scan(float(angle_min), float(angle_increment), r, float(range_max),
                    float(range_min), pose=pose)
    step = abs(float(angle_increment))
    sense = -1.0 if mount.upside_down else 1.0
    beams = mount.yaw + sense * (angle_min + np.arange(len(r)) * angle_increment)
    with np.errstate(invalid='ignore'):
        hit = np.isfinite(r) & (r >= range_min) & (r <= range_max)
    empty = np.isposinf(r)
    reach = np.where(hit, r, range_max)
    px, py = mount.x + reach * np.cos(beams), mount.y + reach * np.sin(beams)
    distance, bearing = np.hypot(px, py), np.arctan2(py, px)
    if len(r) * step >= 2.0 * math.pi - step / 2.0:
        start, count = -math.pi, int(round(2.0 * math.pi / step))
        index = np.rint((bearing + math.pi) / step).astype(np.int64) % count
    else:
        centre = _wrap(mount.yaw + sense * (angle_min + (len(r) - 1) * angle_increment / 2.0))
        offsets = _wrap(bearing - centre)
        span = np.concatenate([_wrap(beams - centre), offsets[hit | empty]])
        low, high = float(span.min()), float(span.max())
        start, count = _wrap(centre + low), int(math.floor((high - low) / step + 0.5)) + 1
        index = np.clip(np.rint((offsets - low) / step).astype(np.int64), 0, count - 1)
    out = np.full(count, np.nan)
    out[index[empty]] = np.inf
    nearest = np.full(count, np.inf)
    np.minimum.at(nearest, index[hit], distance[hit])
    returned = np.isfinite(nearest)
    out[returned] = nearest[returned]
    bins = np.flatnonzero(returned)
    a, b = bins[:-1], bins[1:]
    ra, rb = nearest[a], nearest[b]
    gaps = (b - a > 1) & (b - a <= _GAP_FILL_BINS + 1) & \
        (np.abs(ra - rb) <= _GAP_FILL_M + _GAP_FILL_SHARE * np.minimum(ra, rb))
    for i, j in zip(a[gaps], b[gaps]):
        inside = np.arange(i + 1, j)
        fill = np.isnan(out[inside])
        out[inside[fill]] = np.interp(inside[fill], [i, j], [nearest[i], nearest[j]])
    return Scan(float(start), step, out, float(range_max) + math.hypot(mount.x, mount.y),
                0.0, pose=pose)


class ScanMap:
    """Occupancy, camera coverage and planning on one grid around the first pose."""

    def __init__(self, resolution: float = 0.1, size_m: float = 40.0,
                 robot_radius: float = 0.2, inflation_m: float = 0.1,
                 hfov_rad: float = math.radians(60.0), view_range_m: float = 3.5,
                 wall_view_range_m: float = 7.0, wall_extent_m: float = 1.0,
                 view_m: float = 1.5, frontier_bonus_m: float = 3.5):
        self.resolution = float(resolution)
        self.n = int(round(size_m / resolution))
        self.robot_radius = float(robot_radius)
        self.inflation_m = float(inflation_m)
        self.hfov_rad = float(hfov_rad)
        self.view_range_m = float(view_range_m)
        self.wall_view_range_m = float(wall_view_range_m)
        self.wall_extent_m = float(wall_extent_m)
        self.view_m = float(view_m)            # a viewpoint within this of what it looks at
        self.frontier_bonus_m = float(frontier_bonus_m)
        self.origin: Optional[Tuple[float, float]] = None   # world x, y of cell (0, 0)
        self.logodds = np.zeros((self.n, self.n), dtype=np.float32)
        # Cells once occupied stay so until their log-odds fall below _RELEASE (hysteresis:
        # a cell a wall's end barely reaches into does not flicker as beams pass it).
        self.held = np.zeros((self.n, self.n), dtype=bool)
        self.looked = np.zeros((self.n, self.n), dtype=bool)
        self.glanced = np.zeros((self.n, self.n), dtype=bool)    # in view from any range
        self.dropped = np.zeros((self.n, self.n), dtype=bool)
        self.scans = 0

    # ---- cells ---------------------------------------------------------------------------
    def cell(self, x, y):
        """Return the grid indices (i along x, j along y) of world points; may lie outside."""
        i = np.floor((np.asarray(x) - self.origin[0]) / self.resolution).astype(np.int64)
        j = np.floor((np.asarray(y) - self.origin[1]) / self.resolution).astype(np.int64)
        return i, j

    def centre(self, i, j):
        return (self.origin[0] + (np.asarray(i) + 0.5) * self.resolution,
                self.origin[1] + (np.asarray(j) + 0.5) * self.resolution)

    def _inside(self, i, j):
        return (i >= 0) & (i < self.n) & (j >= 0) & (j < self.n)

    @property
    def occupied(self) -> np.ndarray:
        return self.held | (self.logodds > _OCCUPIED)

    @property
    def free(self) -> np.ndarray:
        return self.logodds < _FREE

    # ---- updates -------------------------------------------------------------------------
    def integrate(self, pose: Pose, scan: Scan) -> None:
        """Add one scan taken at pose (odometry frame)."""
        x, y, yaw = pose
        if self.origin is None:
            half = self.n * self.resolution / 2.0
            self.origin = (x - half, y - half)
        r = np.asarray(scan.ranges, dtype=float)
        ok = scan.valid()
        angles = scan.angles + yaw
        # Free along every beam: to its return, or to range_max when there is none (inf,
        # REP 117); nan and returns outside [range_min, range_max] say nothing.
        reach = np.where(ok, r, np.where(np.isposinf(r), scan.range_max, 0.0))
        step = self.resolution / 2.0
        s = np.arange(step, max(float(reach.max(initial=0.0)), step), step)
        along = s[None, :] < (reach[:, None] - self.resolution * 0.7)
        px = x + np.cos(angles)[:, None] * s[None, :]
        py = y + np.sin(angles)[:, None] * s[None, :]
        fi, fj = self.cell(px[along], py[along])
        hx, hy = x + r[ok] * np.cos(angles[ok]), y + r[ok] * np.sin(angles[ok])
        hi, hj = self.cell(hx, hy)
        flat = self.logodds.reshape(-1)
        inside = self._inside(hi, hj)
        hits = np.unique(hi[inside] * self.n + hj[inside])
        inside = self._inside(fi, fj)
        passed = fi[inside] * self.n + fj[inside]
        # What a beam passes through is free, unless a beam of this scan ends there.
        cells = np.setdiff1d(np.unique(passed), hits, assume_unique=True)
        held = (flat[cells] > _OCCUPIED) | self.held.reshape(-1)[cells]
        flat[cells[~held]] += _LOG_FREE
        # A cell held occupied forgets only what clearly contradicts it: a beam through
        # the middle of the cell that ends well beyond it, crossing the line of occupied
        # cells it is part of steeply. A beam grazing a wall crosses the corners of its
        # cells (or the free part of a cell the wall's face cuts) and ends on that wall
        # further on; from the clamp (_LOG_MAX) down to _RELEASE it takes
        # _MISSES_TO_CLEAR such scans to clear a cell, so a thing that moved away is gone
        # from the map in about a second of scans and one stray beam never opens a wall.
        if held.any():
            beam = np.broadcast_to(np.arange(len(r))[:, None], along.shape)[along][inside]
            ci, cj = self.centre(fi[inside], fj[inside])
            dx, dy = ci - x, cj - y
            a = angles[beam]
            across = np.abs(dx * np.sin(a) - dy * np.cos(a))
            beyond = reach[beam] - (dx * np.cos(a) + dy * np.sin(a))
            clear = (across < _MISS_ACROSS * self.resolution) & \
                (beyond > _MISS_BEYOND * self.resolution)
            clear &= ~self._along_a_line(fi[inside], fj[inside], a)
            contradicted = np.intersect1d(np.unique(passed[clear]), cells[held],
                                          assume_unique=True)
            flat[contradicted] += _LOG_MISS
        flat[hits] += _LOG_OCC
        np.clip(self.logodds, _LOG_MIN, _LOG_MAX, out=self.logodds)
        self.held |= self.logodds > _OCCUPIED
        self.held &= self.logodds >= _RELEASE
        self.scans += 1

    def _along_a_line(self, i: np.ndarray, j: np.ndarray, angles: np.ndarray) -> np.ndarray:
        """
        Tell whether each cell continues an occupied line that the beam at angle meets flat.

        A line is an occupied neighbour along x, y or a diagonal; flat is within
        _MISS_GRAZING_RAD of it. A beam crossing a wall steeply ends on it, so such a beam
        through the wall's cell says the wall is gone; one along the wall may just cross
        the free part of a cell its face cuts.
        """
        occupied = np.pad(self.occupied, 1)
        flat = np.zeros(len(i), dtype=bool)
        for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
            line = occupied[i + 1 + di, j + 1 + dj] | occupied[i + 1 - di, j + 1 - dj]
            flat |= line & (np.abs(np.sin(angles - math.atan2(dj, di))) <
                            math.sin(_MISS_GRAZING_RAD))
        return flat

    def _candidates(self, pose: Pose, scan: Scan, layer: np.ndarray,
                    walls: Optional[np.ndarray] = None):
        """
        Return the occupied cells not in layer yet (looked or glanced at) within range.

        Cells given up are left out. The camera's range is, with walls (the _walls() mask),
        view_range_m for things and wall_view_range_m for walls; without, wall_view_range_m
        for all. Returns their indices, bearings in the robot frame and whether each is in
        line of sight (not beyond the beam toward it).
        """
        x, y, yaw = pose
        reach = int(math.ceil(self.wall_view_range_m / self.resolution)) + 1
        ci, cj = self.cell(x, y)
        i0, i1 = max(0, ci - reach), min(self.n, ci + reach + 1)
        j0, j1 = max(0, cj - reach), min(self.n, cj + reach + 1)
        window = self.occupied[i0:i1, j0:j1] & ~layer[i0:i1, j0:j1] & \
            ~self.dropped[i0:i1, j0:j1]
        wi, wj = np.nonzero(window)
        wi, wj = wi + i0, wj + j0
        cx, cy = self.centre(wi, wj)
        d = np.hypot(cx - x, cy - y)
        bearing = np.arctan2(cy - y, cx - x) - yaw
        bearing = (bearing + math.pi) % (2.0 * math.pi) - math.pi
        limit = self.wall_view_range_m
        if walls is not None:
            limit = np.where(walls[wi, wj], self.wall_view_range_m, self.view_range_m)
        near = d <= limit
        sight = d <= scan.range_toward(bearing) + 1.5 * self.resolution
        return wi[near], wj[near], bearing[near], sight[near]

    def _components(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Label the 8-connected components of the occupied cells.

        Returns the labels (0 = none) and which labels are walls (longer than
        wall_extent_m), not things.
        """
        labels, count = ndimage.label(self.occupied, structure=_EIGHT)
        is_wall = np.zeros(count + 1, dtype=bool)
        limit = self.wall_extent_m / self.resolution
        for index, box in enumerate(ndimage.find_objects(labels), start=1):
            if box is not None and \
                    max(box[0].stop - box[0].start, box[1].stop - box[1].start) > limit:
                is_wall[index] = True
        return labels, is_wall

    def _walls(self) -> np.ndarray:
        """Return the occupied cells of components longer than wall_extent_m (the walls)."""
        labels, is_wall = self._components()
        return is_wall[labels] & (labels > 0)

    def mark_viewed(self, pose: Pose, scan: Scan, margin_rad: float = 0.15) -> None:
        """
        Mark what the camera sees from pose as looked at.

        Occupied cells in its field of view (less margin_rad each side, for the answer's
        latency while turning), in sight and in range count as looked at; a thing (not a
        wall) seen in part counts as seen whole: the model knows an object from any side,
        and the scan shows more of its outline as the robot moves.
        """
        if self.origin is None:
            return
        labels, is_wall = self._components()
        walls = is_wall[labels] & (labels > 0)
        for layer, ranged in ((self.glanced, False), (self.looked, True)):
            wi, wj, bearing, sight = self._candidates(pose, scan, layer,
                                                      walls if ranged else None)
            seen = sight & (np.abs(bearing) <= self.hfov_rad / 2.0 - margin_rad)
            layer[wi[seen], wj[seen]] = True
            things = np.unique(labels[wi[seen], wj[seen]])
            things = things[(things > 0) & ~is_wall[things]]
            if len(things):
                layer |= np.isin(labels, things)

    # ---- where to look, where to go -------------------------------------------------------
    def unlooked_bearings(self, pose: Pose, scan: Scan, min_cells: int = 3,
                          by_map: bool = False) -> np.ndarray:
        """
        Return the robot-frame bearings of the cells in sight the camera has not had in view.

        Cells count at any range the camera may see them from; none are returned when fewer
        than min_cells (stray cells are not worth turning for). In sight: nearer than the
        scan's beam toward them, or with by_map (a scan that covers only part of the circle,
        as a depth camera's) no occupied cell of the map in between.
        """
        if self.origin is None:
            return np.zeros(0)
        wi, wj, bearing, sight = self._candidates(pose, scan, self.glanced)
        if by_map:
            sight = self._in_sight(pose, wi, wj)
        bearing = bearing[sight]
        return bearing if len(bearing) >= min_cells else np.zeros(0)

    def _in_sight(self, pose: Pose, wi: np.ndarray, wj: np.ndarray) -> np.ndarray:
        """Tell whether each cell is in line of sight of pose on the map (nothing between)."""
        if not len(wi):
            return np.zeros(0, dtype=bool)
        ci, cj = self.cell(pose[0], pose[1])
        steps = int(np.max(np.hypot(wi - ci, wj - cj))) * 2 + 2
        t = np.linspace(0.0, 1.0, steps)[None, :]
        si = np.rint(ci + (wi[:, None] - ci) * t).astype(np.int64)
        sj = np.rint(cj + (wj[:, None] - cj) * t).astype(np.int64)
        near = (np.abs(si - wi[:, None]) <= 1) & (np.abs(sj - wj[:, None]) <= 1)
        inside = self._inside(si, sj)
        blocked = np.zeros(si.shape, dtype=bool)
        blocked[inside] = self.occupied[si[inside], sj[inside]]
        return ~(blocked & ~near).any(axis=1)

    def corridor_clear(self, pose: Pose, lookahead_m: float, half_width_m: float) -> bool:
        """
        Tell whether no occupied cell reaches into the rectangle ahead of pose.

        Scan.corridor_clear's rectangle on the map: for a scan that does not cover the
        corridor's sides near the robot (a depth camera's view), what was mapped there
        before counts. A cell reaches half a cell beyond its centre to the sides.
        """
        if self.origin is None:
            return True
        x, y, yaw = pose
        r = int(math.ceil(math.hypot(lookahead_m, half_width_m) / self.resolution)) + 1
        ci, cj = self.cell(x, y)
        i0, j0 = max(0, ci - r), max(0, cj - r)
        oi, oj = np.nonzero(self.occupied[i0:ci + r + 1, j0:cj + r + 1])
        ox, oy = self.centre(oi + i0, oj + j0)
        ahead = (ox - x) * math.cos(yaw) + (oy - y) * math.sin(yaw)
        side = -(ox - x) * math.sin(yaw) + (oy - y) * math.cos(yaw)
        return not bool(np.any((ahead > 0.0) & (ahead < lookahead_m) &
                               (np.abs(side) < half_width_m + self.resolution / 2.0)))

    def unknown_bearings(self, pose: Pose, bins: int = 24, radius_m: float = 2.0
                         ) -> np.ndarray:
        """
        Return the robot-frame bearings (of bins around the robot) the map does not know.

        A bearing is unknown when its ray from the robot meets a cell neither free nor
        occupied within radius_m before it meets an occupied one (not the unknown sliver
        between the floor and a wall's face, within two cells of it): what a scan over part
        of the circle (a depth camera's) has not covered yet around the robot.
        """
        if self.origin is None:
            return np.zeros(0)
        x, y, yaw = pose
        headings = np.arange(bins) * 2.0 * math.pi / bins - math.pi
        s = np.arange(self.resolution, radius_m, self.resolution / 2.0)
        i, j = self.cell(x + np.cos(headings)[:, None] * s, y + np.sin(headings)[:, None] * s)
        inside = self._inside(i, j)
        i, j = np.clip(i, 0, self.n - 1), np.clip(j, 0, self.n - 1)
        r = int(math.ceil(radius_m / self.resolution)) + 3
        ci, cj = self.cell(x, y)
        i0, j0 = max(0, ci - r), max(0, cj - r)
        near_wall = ndimage.binary_dilation(
            self.occupied[i0:ci + r + 1, j0:cj + r + 1], iterations=2)
        occupied = self.occupied[i, j] & inside
        unknown = ~self.free[i, j] & ~occupied & inside & \
            ~near_wall[np.clip(i - i0, 0, near_wall.shape[0] - 1),
                       np.clip(j - j0, 0, near_wall.shape[1] - 1)]
        before = np.cumsum(occupied, axis=1) == 0
        out = (unknown & before).any(axis=1)
        return _wrap(headings[out] - yaw)

    def _traversable(self) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return the known-free cells the robot's disc fits in, and the clearance.

        A disc fits where it is clear of occupied cells by its radius plus inflation_m;
        the clearance is every cell's distance to the nearest occupied one (m).
        """
        clearance = ndimage.distance_transform_edt(~self.occupied) * self.resolution
        return self.free & (clearance > self.robot_radius + self.inflation_m), clearance

    def frontier(self) -> np.ndarray:
        """
        Return the free cells next to open unknown ones.

        That is where the map ends; not the unknown sliver between the floor and a wall's
        face.
        """
        unknown = ~self.free & ~self.occupied
        open_unknown = unknown & ~ndimage.binary_dilation(self.occupied, iterations=2)
        return self.free & ndimage.binary_dilation(open_unknown) & ~self.dropped

    def is_open(self, cell: Tuple[int, int]) -> bool:
        """Tell whether a goal cell wants a look: unlooked occupied or frontier, not given up."""
        i, j = cell
        if self.dropped[i, j]:
            return False
        if self.occupied[i, j]:
            return not self.looked[i, j]
        return bool(self.frontier()[i, j])

    def plan(self, pose: Pose, goal: Optional[Tuple[int, int]] = None
             ) -> Optional[Tuple[List[Tuple[float, float]], Tuple[int, int]]]:
        """
        Return (world points of the cheapest path to a viewpoint of goal, goal).

        When goal is None or no longer open, the nearest open one is taken, things and
        frontier before walls (a door is the only target on a wall, and walls are looked at
        from afar while passing). None when nothing open is in reach.
        """
        if self.origin is None:
            return None
        trav, clearance = self._traversable()
        start = self._start_cell(pose, trav)
        if start is None:
            return None
        dist, pred, index = self._dijkstra(trav, clearance, start)
        reach = np.full(trav.shape, np.inf)
        reach[trav] = dist
        radius = int(round(self.view_m / self.resolution))
        viewpoint = None
        if goal is not None and self.is_open(goal):
            viewpoint, cost = self._viewpoint(reach, goal, radius)
            if not np.isfinite(cost):
                viewpoint = None
        if viewpoint is None:
            chosen = self._choose_goal(reach, radius)
            if chosen is None:
                return None
            goal, viewpoint = chosen
        vi, vj = viewpoint
        cells = []
        node = int(index[vi, vj])
        while node >= 0:
            cells.append(node)
            node = int(pred[node])
        ti, tj = np.nonzero(trav)
        path = [tuple(map(float, self.centre(ti[k], tj[k]))) for k in reversed(cells)]
        return path, goal

    def _choose_goal(self, reach: np.ndarray, radius: int
                     ) -> Optional[Tuple[Tuple[int, int], Tuple[int, int]]]:
        """Return the (goal cell, its viewpoint) of the least cost, or None."""
        unlooked = self.occupied & ~self.looked & ~self.dropped
        walls = self._walls()
        # Tiny specks (a stray return; a beam's gap between returns) are not worth a trip.
        frontier = _without_specks(self.frontier(), 4)
        # A lower bound of each goal's cost: the path length to the nearest traversable
        # cell within view_m (a minimum filter of the distance field over a disc; line of
        # sight aside). Goals are then tried in that order, each with its real viewpoint
        # (line of sight), until no lower bound can beat the best found.
        yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        disc = xx * xx + yy * yy <= radius * radius
        near_view = np.full(reach.shape, np.inf)
        fi, fj = np.nonzero(np.isfinite(reach))
        if len(fi):      # only around the reachable cells: elsewhere the minimum is inf
            i0, i1 = max(0, fi.min() - radius - 1), min(self.n, fi.max() + radius + 2)
            j0, j1 = max(0, fj.min() - radius - 1), min(self.n, fj.max() + radius + 2)
            near_view[i0:i1, j0:j1] = ndimage.minimum_filter(
                reach[i0:i1, j0:j1], footprint=disc, mode='constant', cval=np.inf)
        # A wide frontier (an opening, a room not seen yet) may hide many things: it is
        # worth frontier_bonus_m of extra path over a single thing.
        labels, _ = ndimage.label(frontier, structure=_EIGHT)
        wide = (np.bincount(labels.ravel()) * self.resolution >= 1.0)[labels] & frontier
        bonus = np.where(wide, self.frontier_bonus_m, 0.0)
        for wanted in (_without_specks(unlooked & ~walls, 2) | frontier,
                       unlooked & walls):
            bound = np.where(wanted, near_view - bonus, np.inf)
            order = np.argsort(bound, axis=None)
            best, best_cost = None, np.inf
            for flat in order[:200]:
                if bound.flat[flat] >= best_cost:
                    break
                goal = tuple(int(v) for v in np.unravel_index(int(flat), bound.shape))
                viewpoint, cost = self._viewpoint(reach, goal, radius)
                cost -= bonus[goal]
                if cost < best_cost:
                    best, best_cost = (goal, viewpoint), cost
            if best is not None:
                return best
        return None

    def _viewpoint(self, reach: np.ndarray, goal: Tuple[int, int], radius: int
                   ) -> Tuple[Tuple[int, int], float]:
        """
        Return the cheapest traversable cell that sees goal, and its path length.

        A cell sees goal within view_m with no occupied cell in between; a frontier goal
        within 0.5 m (going there shows what lies beyond). The length is inf if none does.
        """
        gi, gj = goal
        if not self.occupied[gi, gj]:
            radius = min(radius, int(round(0.5 / self.resolution)))
        r0, r1 = max(0, gi - radius), min(self.n, gi + radius + 1)
        c0, c1 = max(0, gj - radius), min(self.n, gj + radius + 1)
        box = reach[r0:r1, c0:c1].copy()
        bi, bj = np.mgrid[r0:r1, c0:c1]
        box[(bi - gi) ** 2 + (bj - gj) ** 2 > radius * radius] = np.inf
        ci, cj = np.nonzero(np.isfinite(box))
        if len(ci):
            # Line of sight: samples along each candidate's segment to the goal, short of
            # the goal's own cell, must all be free of occupied cells.
            t = np.linspace(0.0, 1.0, 2 * radius + 2)[None, :-1]
            si = np.rint(ci[:, None] + r0 + (gi - ci[:, None] - r0) * t).astype(np.int64)
            sj = np.rint(cj[:, None] + c0 + (gj - cj[:, None] - c0) * t).astype(np.int64)
            near_goal = (np.abs(si - gi) <= 1) & (np.abs(sj - gj) <= 1)
            blocked = (self.occupied[si, sj] & ~near_goal).any(axis=1)
            box[ci[blocked], cj[blocked]] = np.inf
        k = int(np.argmin(box))
        vi, vj = np.unravel_index(k, box.shape)
        return (int(vi + r0), int(vj + c0)), float(box.flat[k])

    def drop_near(self, x: float, y: float, radius_m: float) -> int:
        """
        Give up the unlooked cells and frontier within radius_m of (x, y).

        A viewpoint there did not show them (hidden behind something). Returns how many.
        """
        if self.origin is None:
            return 0
        ci, cj = self.cell(x, y)
        r = int(math.ceil(radius_m / self.resolution))
        i0, i1 = max(0, ci - r), min(self.n, ci + r + 1)
        j0, j1 = max(0, cj - r), min(self.n, cj + r + 1)
        bi, bj = np.mgrid[i0:i1, j0:j1]
        disc = (bi - ci) ** 2 + (bj - cj) ** 2 <= r * r
        open_cells = (self.occupied[i0:i1, j0:j1] & ~self.looked[i0:i1, j0:j1]) | \
            self.frontier()[i0:i1, j0:j1]
        new = disc & open_cells & ~self.dropped[i0:i1, j0:j1]
        self.dropped[i0:i1, j0:j1] |= new
        return int(new.sum())

    def _start_cell(self, pose: Pose, trav: np.ndarray) -> Optional[Tuple[int, int]]:
        """
        Return the robot's cell, or the nearest traversable one within 0.5 m.

        Inflation may cover the cell the robot stands in beside a wall.
        """
        ci, cj = self.cell(pose[0], pose[1])
        if not (0 <= ci < self.n and 0 <= cj < self.n):
            return None
        if trav[ci, cj]:
            return int(ci), int(cj)
        r = int(math.ceil(0.5 / self.resolution))
        i0, i1 = max(0, ci - r), min(self.n, ci + r + 1)
        j0, j1 = max(0, cj - r), min(self.n, cj + r + 1)
        wi, wj = np.nonzero(trav[i0:i1, j0:j1])
        if len(wi) == 0:
            return None
        k = int(np.argmin((wi + i0 - ci) ** 2 + (wj + j0 - cj) ** 2))
        return int(wi[k] + i0), int(wj[k] + j0)

    def _dijkstra(self, trav: np.ndarray, clearance: np.ndarray, start: Tuple[int, int]):
        """
        Find the shortest paths from start over traversable cells.

        8-connected, no corner cutting; steps near obstacles cost more, so paths keep to
        the middle of passages.
        """
        index = np.full(trav.shape, -1, dtype=np.int64)
        ti, tj = np.nonzero(trav)
        index[ti, tj] = np.arange(len(ti))
        penalty = 1.0 + 2.0 * np.clip(0.6 - clearance, 0.0, None) / 0.6
        rows, cols, weights = [], [], []
        n = self.n
        for di, dj in ((1, 0), (0, 1), (1, 1), (1, -1)):
            a = trav[max(0, -di):n - max(0, di), max(0, -dj):n - max(0, dj)]
            b = trav[max(0, di):n - max(0, -di), max(0, dj):n - max(0, -dj)]
            ok = a & b
            if di and dj:       # diagonal: both orthogonal neighbours free (no corner cut)
                side1 = trav[max(0, di):n - max(0, -di), max(0, -dj):n - max(0, dj)]
                side2 = trav[max(0, -di):n - max(0, di), max(0, dj):n - max(0, -dj)]
                ok &= side1 & side2
            ai, aj = np.nonzero(ok)
            ai, aj = ai + max(0, -di), aj + max(0, -dj)
            bi, bj = ai + di, aj + dj
            w = self.resolution * math.hypot(di, dj) * \
                (penalty[ai, aj] + penalty[bi, bj]) / 2.0
            rows.append(index[ai, aj])
            cols.append(index[bi, bj])
            weights.append(w)
        rows, cols, weights = map(np.concatenate, (rows, cols, weights))
        graph = csr_matrix((weights, (rows, cols)), shape=(len(ti), len(ti)))
        dist, pred = dijkstra(graph, directed=False, indices=int(index[start]),
                              return_predecessors=True)
        return dist, pred, index


def _without_specks(mask: np.ndarray, min_cells: int) -> np.ndarray:
    """Return mask without its 8-connected components smaller than min_cells."""
    labels, _ = ndimage.label(mask, structure=_EIGHT)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return sizes[labels] >= min_cells


def lookahead_point(path: Sequence[Tuple[float, float]], pose: Pose,
                    lookahead_m: float) -> Tuple[Tuple[float, float], float]:
    """
    Return the pure-pursuit point and the path length left from there.

    The point lies lookahead_m further along path than the path's point nearest the robot.
    """
    pts = np.asarray(path, dtype=float)
    d = np.hypot(pts[:, 0] - pose[0], pts[:, 1] - pose[1])
    k = int(np.argmin(d))
    seg = np.hypot(*np.diff(pts[k:], axis=0).T) if len(pts) - k > 1 else np.zeros(0)
    along = np.concatenate([[0.0], np.cumsum(seg)])
    m = int(np.searchsorted(along, lookahead_m))
    m = min(m, len(along) - 1)
    return (float(pts[k + m, 0]), float(pts[k + m, 1])), float(along[-1] - along[m])
