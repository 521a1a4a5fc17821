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
A planar virtual scan from a depth image, for robots with a depth camera and no lidar.

Plain numpy, no ROS. Every pixel of a depth image (z depth in metres, REP 118) is
back-projected with the camera's pinhole intrinsics and placed on the robot by the
camera's mount (its pose in the base frame); the points within a height band above the
floor are obstacles. Binned by bearing from the base's origin, the nearest obstacle of
each bin is one beam of a ``Scan`` (vlm_nav.nav.scan_map), over the camera's horizontal
field of view only:

- a beam with an obstacle in the band reads its horizontal range;
- a beam whose pixels measured something (the floor, things above the band, or a depth
  beyond range_max) and no obstacle in the band reads inf: no return, free to range_max
  (REP 117; ``ScanMap.integrate`` clears along it);
- a beam none of whose pixels measured anything (NaN, 0, dropouts) reads nan: nothing
  measured (``Scan.valid`` is false, the map learns nothing along it).

Depth pixels: finite and > 0 are measurements; +inf is 'beyond range' (a measurement of
free space); NaN, 0, negative and -inf are invalid. A depth camera gives NaN (32FC1) or 0
(16UC1) both where nothing is in range and where it failed (dark or thin surfaces), so an
invalid pixel says nothing.

The target's range (``range_at_bearing``) is the median horizontal range of the nearest
cluster of points in the image columns around the target's bearing, above the floor.
"""

from dataclasses import dataclass
import functools
import math
from typing import Optional, Sequence, Tuple

import numpy as np

from vlm_nav.nav.scan_map import Pose, Scan

# Default height band above the floor (base frame z) whose points are obstacles: above the
# floor's noise, up to a little over a small robot's height.
MIN_HEIGHT_M = 0.05
MAX_HEIGHT_M = 1.0


@dataclass(frozen=True)
class Intrinsics:
    """
    A pinhole camera's intrinsics (sensor_msgs/CameraInfo's K) and its image size.

    fx, fy: focal lengths in pixels; cx, cy: the principal point in pixel coordinates
    (pixel (u, v)'s centre at u, v; column u from the left, row v from the top).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @classmethod
    def from_hfov(cls, width: int, height: int, hfov_rad: float) -> 'Intrinsics':
        """Square pixels, centred principal point, hfov_rad across the width (sim_node's)."""
        f = (width / 2.0) / math.tan(hfov_rad / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    @classmethod
    def from_k(cls, k: Sequence[float], width: int, height: int) -> 'Intrinsics':
        """
        Read CameraInfo's row-major 3x3 K and the image size.

        Raises ValueError, with the reason, for focal lengths that are not finite and
        positive, a principal point that is not finite, or an empty image.
        """
        k = [float(v) for v in k]
        if len(k) != 9:
            raise ValueError(f'K has {len(k)} values, not 9')
        fx, cx, fy, cy = k[0], k[2], k[4], k[5]
        if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0.0 and fy > 0.0):
            raise ValueError(f'focal lengths fx={fx}, fy={fy}: not finite and positive '
                             '(an uncalibrated camera_info has K all zero)')
        if not (math.isfinite(cx) and math.isfinite(cy)):
            raise ValueError(f'principal point ({cx}, {cy}) is not finite')
        if width <= 0 or height <= 0:
            raise ValueError(f'image size {width}x{height}')
        return cls(fx, fy, cx, cy, int(width), int(height))

    @property
    def hfov_rad(self) -> float:
        """Return the horizontal field of view between the outer edges of the image."""
        return math.atan((self.cx + 0.5) / self.fx) + \
            math.atan((self.width - 0.5 - self.cx) / self.fx)


# The optical frame (z forward, x right, y down) seen from the camera's body frame
# (x forward, y left, z up): the columns are the body's axes in optical coordinates.
_BODY_IN_OPTICAL = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])


@dataclass(frozen=True)
class CameraMount:
    """
    Where a camera sits on the robot: its body frame's pose in the base frame.

    The body frame is REP 103's camera_link (x forward along the optical axis, y left, z
    up), not the optical frame (z forward, x right, y down) its images are stamped with.
    x, y, z in metres (z: the camera's height above the floor when the base frame's origin
    lies on the floor, as base_footprint does); yaw, pitch, roll in radians, rotation
    Rz(yaw) Ry(pitch) Rx(roll) (REP 103): positive pitch looks down.
    """

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def rotation(self) -> np.ndarray:
        """Return the 3x3 rotation from the camera's body frame to the base frame."""
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                         [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                         [-sp, cp * sr, cp * cr]])

    @classmethod
    def from_values(cls, values: Sequence[float]) -> 'CameraMount':
        """
        Read [x, y, z, roll, pitch, yaw] of the body frame (as scan_to_base takes them).

        Raises ValueError, with the reason, for another length or a value not finite.
        """
        v = [float(a) for a in values]
        if len(v) != 6:
            raise ValueError(f'{len(v)} values: give [x, y, z, roll, pitch, yaw] (m, rad) '
                             "of the camera's body frame (x forward, z up) in the base frame")
        if not all(math.isfinite(a) for a in v):
            raise ValueError(f'{v}: not all finite')
        x, y, z, roll, pitch, yaw = v
        return cls(x, y, z, yaw, pitch, roll)

    @classmethod
    def from_matrix(cls, x: float, y: float, z: float, rotation: np.ndarray) -> 'CameraMount':
        """Build from a translation and the body-to-base rotation matrix."""
        r = np.asarray(rotation, dtype=float)
        pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
        return cls(float(x), float(y), float(z), math.atan2(r[1, 0], r[0, 0]), pitch,
                   math.atan2(r[2, 1], r[2, 2]))

    @classmethod
    def from_quaternion(cls, x: float, y: float, z: float, qx: float, qy: float, qz: float,
                        qw: float, optical: bool = True) -> 'CameraMount':
        """
        Read a transform's translation and rotation (a tf2 lookup base <- camera frame).

        With optical (the default: depth images are stamped with the optical frame, REP
        118) the rotation is the optical frame's, and the body frame's is derived from it.
        Raises ValueError when the rotation is not a quaternion.
        """
        norm = math.sqrt(qx * qx + qy * qy + qz * qz + qw * qw)
        if not (math.isfinite(norm) and norm > 0.0):
            raise ValueError('rotation is not a quaternion')
        qx, qy, qz, qw = qx / norm, qy / norm, qz / norm, qw / norm
        r = np.array([
            [1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - qz * qw), 2 * (qx * qz + qy * qw)],
            [2 * (qx * qy + qz * qw), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - qx * qw)],
            [2 * (qx * qz - qy * qw), 2 * (qy * qz + qx * qw), 1 - 2 * (qx * qx + qy * qy)]])
        if optical:
            r = r @ _BODY_IN_OPTICAL
        return cls.from_matrix(x, y, z, r)


@functools.lru_cache(maxsize=8)
def _rays(intrinsics: Intrinsics, rotation: Tuple[float, ...], step: int
          ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """
    Return the base-frame direction of each (decimated) pixel's ray per metre of z depth.

    Three arrays of shape (rows, columns), x, y and z components.
    """
    u = np.arange(0, intrinsics.width, step, dtype=float)
    v = np.arange(0, intrinsics.height, step, dtype=float)
    xn = (u[None, :] - intrinsics.cx) / intrinsics.fx       # optical x / z (right)
    yn = (v[:, None] - intrinsics.cy) / intrinsics.fy       # optical y / z (down)
    xn, yn = np.broadcast_arrays(xn, yn)
    body = np.stack([np.ones_like(xn), -xn, -yn])            # body frame, per metre of z
    r = np.asarray(rotation, dtype=float).reshape(3, 3)
    out = np.tensordot(r, body, axes=1)
    for a in out:
        a.setflags(write=False)
    return out[0], out[1], out[2]


def _points(depth: np.ndarray, intrinsics: Intrinsics, mount: CameraMount, step: int):
    """
    Return (z, x, y, height) in the base frame of every decimated pixel, and its ray's.

    z is the pixel's depth (NaN where invalid, +inf kept), the rest are base-frame
    coordinates of its point; also the rays' (x, y) per metre for the bearing of pixels
    with no finite point.
    """
    d = np.asarray(depth, dtype=np.float32)
    if d.shape != (intrinsics.height, intrinsics.width):
        raise ValueError(f'depth image {d.shape[1]}x{d.shape[0]} does not match the '
                         f'intrinsics {intrinsics.width}x{intrinsics.height}')
    z = d[::step, ::step].astype(float)
    rot = tuple(float(v) for v in mount.rotation().ravel())
    rx, ry, rz = _rays(intrinsics, rot, int(step))
    with np.errstate(invalid='ignore'):
        z = np.where(z > 0.0, z, np.nan)                     # 0, negative, -inf: invalid
        px, py, pz = mount.x + rx * z, mount.y + ry * z, mount.z + rz * z
    return z, px, py, pz, rx, ry


def _arc(intrinsics: Intrinsics, mount: CameraMount, step: int
         ) -> Tuple[float, float, float]:
    """
    Return the bearings (base frame, from the camera) every image row spans, and a step.

    A pitched camera sees a wider arc at its bottom rows than at its top: the arc runs
    between the pixel centres of the narrowest row, so each beam of it is looked along by
    pixels of all heights. The step is the widest bearing step between two neighbouring
    pixels of any row: beams at least that far apart each get a pixel of every row.
    """
    rot = tuple(float(v) for v in mount.rotation().ravel())
    rx, ry, _ = _rays(intrinsics, rot, int(step))
    bearing = mount.yaw + _wrap(np.arctan2(ry, rx) - mount.yaw)
    widest = float(np.abs(np.diff(bearing, axis=1)).max()) if bearing.shape[1] > 1 else 0.0
    return float(bearing.min(axis=1).max()), float(bearing.max(axis=1).min()), widest


def _wrap(a):
    return (a + np.pi) % (2.0 * np.pi) - np.pi


def depth_scan(depth: np.ndarray, intrinsics: Intrinsics, mount: CameraMount,
               range_max_m: float, min_height_m: float = MIN_HEIGHT_M,
               max_height_m: float = MAX_HEIGHT_M, beams: Optional[int] = None,
               pixel_step: int = 1, pose: Optional[Pose] = None) -> Scan:
    """
    Return a depth image as a planar Scan of the base frame over the camera's view.

    depth: HxW z depth in metres (REP 118; NaN, 0 and negative invalid, +inf beyond
    range), of the camera described by intrinsics and placed on the base by mount.
    Points whose height above the base frame's origin lies in [min_height_m,
    max_height_m] and whose horizontal distance from the origin is at most range_max_m
    are obstacles. The beams run from the first to the last bearing every image row sees
    (see _arc; angle_min is the first beam's), as many as fit at the widest bearing step
    between neighbouring pixels (each beam gets a pixel of every row: 72 over 55.6
    degrees for a 96-pixel, 60 degree camera pitched 10 degrees down), or beams (pixels are
    binned to the nearest beam; with more beams than that, some may read nan); each reads
    its nearest
    obstacle's horizontal range, inf (free to range_max_m) when its pixels measured
    something and no obstacle, nan when they measured nothing. pixel_step decimates the
    image (every n-th row and column) for large images. pose: the odometry pose when
    the image was taken, kept on the Scan. The Scan's range_max is range_max_m.
    """
    step = max(1, int(pixel_step))
    z, px, py, pz, rx, ry = _points(depth, intrinsics, mount, step)
    lo, hi, widest = _arc(intrinsics, mount, step)
    if beams:
        count = max(1, int(beams))
    else:
        count = int(math.floor((hi - lo) / widest + 1e-9)) + 1 if widest > 0.0 else 1
    increment = (hi - lo) / (count - 1) if count > 1 else max(hi - lo, 1e-9)
    angle_min = lo if count > 1 else (lo + hi) / 2.0
    finite = np.isfinite(z)
    measured = finite | np.isposinf(z)
    # The bearing of each pixel from the base's origin: of its point where finite, of the
    # point at range_max_m along its ray otherwise.
    far = range_max_m / np.maximum(np.hypot(rx, ry), 1e-9)
    bx = np.where(finite, px, mount.x + rx * far)
    by = np.where(finite, py, mount.y + ry * far)
    bearing = mount.yaw + _wrap(np.arctan2(by, bx) - mount.yaw)
    index = np.rint((bearing - angle_min) / increment).astype(np.int64)
    inside = (index >= 0) & (index < count)
    with np.errstate(invalid='ignore'):
        distance = np.hypot(px, py)
        obstacle = finite & (pz >= min_height_m) & (pz <= max_height_m) & \
            (distance <= range_max_m)
    out = np.full(count, np.nan)
    out[np.unique(index[measured & inside])] = np.inf
    hit = obstacle & inside
    nearest = np.full(count, np.inf)
    np.minimum.at(nearest, index[hit], distance[hit])
    returned = np.isfinite(nearest)
    out[returned] = nearest[returned]
    return Scan(float(angle_min), float(increment), out, float(range_max_m), 0.0, pose=pose)


def range_at_bearing(depth: np.ndarray, intrinsics: Intrinsics, mount: CameraMount,
                     bearing_rad: float, half_width_rad: float = math.radians(4.0),
                     min_height_m: float = MIN_HEIGHT_M, max_height_m: float = math.inf,
                     range_max_m: float = math.inf, mask: Optional[np.ndarray] = None,
                     cluster_m: float = 0.3, pixel_step: int = 1) -> float:
    """
    Return the horizontal range (m) of the thing seen at bearing_rad, or NaN.

    bearing_rad: base frame, from the base's origin (+ = left). The pixels are those
    whose points lie within half_width_rad of it (the image columns around the bearing),
    above min_height_m (not the floor), at most max_height_m, within range_max_m, and
    inside mask (HxW bool, the target's image region where known). Of them the nearest
    cluster counts (within cluster_m beyond the 5th percentile of their ranges: the thing
    in front, not the wall behind it); its median range is returned. NaN when no pixel
    qualifies.
    """
    step = max(1, int(pixel_step))
    z, px, py, pz, _, _ = _points(depth, intrinsics, mount, step)
    finite = np.isfinite(z)
    with np.errstate(invalid='ignore'):
        distance = np.hypot(px, py)
        off = np.abs(_wrap(np.arctan2(py, px) - bearing_rad))
        keep = finite & (off <= half_width_rad) & (pz >= min_height_m) & \
            (pz <= max_height_m) & (distance <= range_max_m)
    if mask is not None:
        keep &= np.asarray(mask, dtype=bool)[::step, ::step]
    r = distance[keep]
    if not len(r):
        return math.nan
    front = r[r <= np.percentile(r, 5.0) + cluster_m]
    return float(np.median(front))
