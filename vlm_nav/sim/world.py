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
A headless pybullet world for one Layout: diff-drive robot, camera, ground truth.

pybullet is only the renderer (p.DIRECT + ER_TINY_RENDERER, CPU): bodies have
visual shapes and no collision shapes, and the robot is never rendered (the
camera sits at its centre). Motion and collisions are exact 2-D geometry (robot
disc vs axis-aligned wall boxes and object bounding circles), which is faster
and simpler than pybullet contact queries and fully deterministic.
"""

from dataclasses import asdict, dataclass
import math
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import pybullet as p

from vlm_nav.nav.depth_scan import CameraMount, Intrinsics
from vlm_nav.perception.vocabulary import BEARINGS, format_description, SeenObject
from vlm_nav.sim.layout import Layout, ObjectSpec, Rect, ROBOT_RADIUS
from vlm_nav.sim.plot import top_down_figure

# An object is 'near' when the robot centre is within this many metres of the
# object's centre (door: centre of its panel's face). Centre, not surface,
# so the label does not depend on an object's size or orientation.
NEAR_DISTANCE_M = 1.0
# An object is visible when at least this fraction of the image shows it
# (segmentation mask of the same render, so occlusion counts). 96x96 -> 14 px.
MIN_VISIBLE_FRACTION = 0.0015
CAMERA_NEAR_M = 0.05
CAMERA_FAR_M = 25.0
# The simulated 2-D lidar: beams all round from the robot centre (base_link), first beam
# straight behind (angle_min = -pi), range_max in metres.
SCAN_BEAMS = 180
SCAN_RANGE_M = 8.0
# The simulated depth camera (the colour camera's render): z depth in metres, NaN beyond
# this range (and where nothing is hit: the far plane).
DEPTH_RANGE_M = 6.0


@dataclass(frozen=True)
class DepthFaults:
    """
    What a real depth camera gets wrong, for render_rgbd; all off by default.

    noise_k: Gaussian noise on z with sigma = noise_k * z^2 (metres; a stereo camera's
    error grows with the square of range: RealSense D435 about 0.002-0.005 per metre).
    dark_dropout: probability that a pixel darker than dark_threshold (mean RGB / 255)
    reads invalid (stereo and IR cameras lose dark, unlit surfaces).
    edge_dropout: probability that a pixel next to a depth jump of more than edge_jump_m
    reads invalid (thin things and edges: chair legs, a wall's end).
    min_range_m: nearer than this reads invalid (a stereo camera's minimum range).
    seed: the random generator's seed; each render draws anew.
    """

    noise_k: float = 0.0
    dark_dropout: float = 0.0
    dark_threshold: float = 0.15
    edge_dropout: float = 0.0
    edge_jump_m: float = 0.1
    min_range_m: float = 0.0
    seed: int = 0

    @property
    def enabled(self) -> bool:
        return (self.noise_k > 0.0 or self.dark_dropout > 0.0 or self.edge_dropout > 0.0
                or self.min_range_m > 0.0)


def camera_to_base(layout: Layout) -> List[float]:
    """
    Return the layout's camera pose on the robot as [x, y, z, roll, pitch, yaw] (m, rad).

    The camera body frame's (x forward, z up) in base_link, positive pitch down (REP 103):
    what a navigator's depth_camera_to_base takes (World.camera_mount() as a list).
    """
    return [0.0, 0.0, float(layout.camera_height), 0.0,
            -math.radians(layout.camera_pitch_deg), 0.0]


def linear_depth(buffer: np.ndarray, near: float = CAMERA_NEAR_M,
                 far: float = CAMERA_FAR_M) -> np.ndarray:
    """Return the z depth (metres, float32) of an OpenGL depth buffer in [0, 1]."""
    d = np.asarray(buffer, dtype=np.float64)
    return (far * near / (far - (far - near) * d)).astype(np.float32)


def min_visible_pixels(image_size: int) -> int:
    """Pixel count at or above which an object counts as visible."""
    return max(4, int(round(MIN_VISIBLE_FRACTION * image_size * image_size)))


def wrap_angle(a: float) -> float:
    """Wrap to [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


class Pose2D(NamedTuple):
    x: float
    y: float
    yaw: float


@dataclass
class ObjectTruth:
    """What is true about one object for the current robot pose and last render."""

    label: str
    x: float
    y: float
    distance_m: float          # robot centre to object centre (door: panel face centre)
    bearing_rad: float         # + = left of the robot heading (REP 103), in [-pi, pi)
    visible: bool              # pixel_count >= min_visible_pixels(image_size)
    pixel_count: int
    image_bearing: str         # third of the image holding the visible pixels' centroid;
    #                            with no pixels, the third the geometric bearing falls in
    distance: str              # 'near' if distance_m <= NEAR_DISTANCE_M else 'far'

    def to_dict(self) -> Dict:
        return asdict(self)


def bearing_label(bearing_rad: float, hfov_rad: float) -> str:
    """'left'/'center'/'right' for a geometric bearing, by image thirds."""
    # Thirds of the image are not equal angles for a pinhole camera: compare in
    # the image plane (tan), and put anything beyond the edges on its side.
    if abs(bearing_rad) >= math.pi / 2:
        return BEARINGS[0] if bearing_rad > 0 else BEARINGS[2]
    u = math.tan(bearing_rad) / math.tan(hfov_rad / 2.0)   # +1 = left edge
    if u > 1.0 / 3.0:
        return BEARINGS[0]
    if u < -1.0 / 3.0:
        return BEARINGS[2]
    return BEARINGS[1]


def describe(truths: Sequence[ObjectTruth]) -> str:
    """Describe the visible objects in the grammar of vlm_nav.perception.vocabulary."""
    return format_description([SeenObject(t.label, t.image_bearing, t.distance)
                               for t in truths if t.visible])


def _cone_mesh(radius: float, height: float, n: int = 16
               ) -> Tuple[List[List[float]], List[int]]:
    verts = [[0.0, 0.0, height], [0.0, 0.0, 0.0]]
    verts += [[radius * math.cos(2 * math.pi * i / n), radius * math.sin(2 * math.pi * i / n),
               0.0] for i in range(n)]
    idx: List[int] = []
    for i in range(n):
        a, b = 2 + i, 2 + (i + 1) % n
        idx += [0, a, b, 1, b, a]
    return verts, idx


class World:
    """One layout in its own pybullet client; several may live in one process."""

    def __init__(self, layout: Layout, image_size: int = 96, hfov_deg: float = 60.0,
                 robot_radius: float = ROBOT_RADIUS) -> None:
        self.layout = layout
        self.image_size = int(image_size)
        self.hfov_rad = math.radians(hfov_deg)
        self.robot_radius = float(robot_radius)
        self.collisions = 0            # contact events: a blocked step after a free one
        self.blocked_steps = 0         # every step that was refused
        self._in_contact = False
        self._pose = Pose2D(0.0, 0.0, 0.0)
        self._cid = p.connect(p.DIRECT)
        self._closed = False
        # Collision geometry: walls + door panels as rects, other objects as circles.
        rects = list(layout.walls) + [o.panel for o in layout.objects if o.panel is not None]
        self._rect_c = np.array([[r.cx, r.cy] for r in rects], dtype=float).reshape(-1, 2)
        self._rect_h = np.array([[r.hx, r.hy] for r in rects], dtype=float).reshape(-1, 2)
        circles = [o for o in layout.objects if o.panel is None]
        self._circ_c = np.array([[o.x, o.y] for o in circles], dtype=float).reshape(-1, 2)
        self._circ_r = np.array([o.radius for o in circles], dtype=float)
        self._body_to_obj: Dict[int, int] = {}
        self._build_scene()
        n_ids = max(self._body_to_obj, default=0) + 2
        # seg value v (-1 = background) -> object index (-1 = none) via lut[v + 1].
        self._lut = np.full(n_ids, -1, dtype=np.int64)
        for body, idx in self._body_to_obj.items():
            self._lut[body + 1] = idx
        fov_v = math.degrees(self.hfov_rad)   # square image: vertical fov = horizontal
        self._proj = p.computeProjectionMatrixFOV(fov_v, 1.0, CAMERA_NEAR_M, CAMERA_FAR_M,
                                                  physicsClientId=self._cid)
        self._last_seg: Optional[np.ndarray] = None
        self._cols = np.tile(np.arange(self.image_size, dtype=float), self.image_size)
        self._last_image: Optional[np.ndarray] = None
        self._seg_pose: Optional[Pose2D] = None
        self._fault_rng: Optional[np.random.Generator] = None   # render_rgbd's faults
        self._fault_seed: Optional[int] = None

    # ---------------------------------------------------------------- scene
    def _body(self, shape: int, pos: Sequence[float], color: Sequence[float],
              yaw: float = 0.0, **kwargs) -> int:
        vs = p.createVisualShape(shape, rgbaColor=list(color) + [1.0],
                                 physicsClientId=self._cid, **kwargs)
        orn = p.getQuaternionFromEuler([0.0, 0.0, yaw])
        return p.createMultiBody(0.0, -1, vs, list(pos), orn, physicsClientId=self._cid)

    def _box(self, rect: Rect, z0: float = 0.0) -> int:
        return self._body(p.GEOM_BOX, [rect.cx, rect.cy, z0 + rect.height / 2],
                          rect.color, halfExtents=[rect.hx, rect.hy, rect.height / 2])

    def _build_scene(self) -> None:
        lay = self.layout
        hw, hd = lay.width / 2 + 0.2, lay.depth / 2 + 0.2
        self._box(Rect(0.0, 0.0, hw, hd, 0.02, lay.floor_color), z0=-0.02)
        for wall in lay.walls:
            self._box(wall)
        for idx, obj in enumerate(lay.objects):
            for body in self._object_bodies(obj):
                self._body_to_obj[body] = idx

    def _object_bodies(self, obj: ObjectSpec) -> List[int]:
        x, y, c, yaw = obj.x, obj.y, obj.color, obj.yaw
        shape = obj.shape
        if obj.label == 'door':
            return [self._box(obj.panel)]
        if shape == 'ball':
            r = 0.16
            return [self._body(p.GEOM_SPHERE, [x, y, r], c, radius=r)]
        if shape == 'box':
            h = 0.18
            return [self._body(p.GEOM_BOX, [x, y, h], c, yaw, halfExtents=[h, h, h])]
        if shape == 'cone':
            verts, idx = _cone_mesh(0.18, 0.48)
            return [self._body(p.GEOM_MESH, [x, y, 0.0], c, vertices=verts, indices=idx)]
        if shape == 'chair':
            return self._chair(x, y, yaw, c)
        if shape == 'plant':
            pot = (0.62, 0.33, 0.2)
            return [self._body(p.GEOM_CYLINDER, [x, y, 0.15], pot, radius=0.15, length=0.3),
                    self._body(p.GEOM_SPHERE, [x, y, 0.5], c, radius=0.26)]
        raise ValueError(f'unknown object {obj.label!r}')

    def _chair(self, x: float, y: float, yaw: float, c: Sequence[float]) -> List[int]:
        cy, sy = math.cos(yaw), math.sin(yaw)

        def at(lx: float, ly: float) -> Tuple[float, float]:
            return x + cy * lx - sy * ly, y + sy * lx + cy * ly

        parts = [((0.0, 0.0, 0.44), (0.21, 0.21, 0.025))]                 # seat
        parts += [((sx * 0.18, sy2 * 0.18, 0.21), (0.02, 0.02, 0.21))     # legs
                  for sx in (-1, 1) for sy2 in (-1, 1)]
        parts.append(((-0.19, 0.0, 0.68), (0.02, 0.21, 0.22)))            # back
        bodies = []
        for (lx, ly, z), half in parts:
            px, py = at(lx, ly)
            bodies.append(self._body(p.GEOM_BOX, [px, py, z], c, yaw, halfExtents=list(half)))
        return bodies

    # ---------------------------------------------------------------- robot
    @property
    def robot_pose(self) -> Pose2D:
        return self._pose

    @property
    def objects(self) -> List[ObjectSpec]:
        return list(self.layout.objects)

    def reset_robot(self, x: float, y: float, yaw: float) -> None:
        """Teleport the robot (no collision check) and clear contact state."""
        self._pose = Pose2D(float(x), float(y), wrap_angle(float(yaw)))
        self._in_contact = False

    def collides_at(self, x: float, y: float, margin: float = 0.0) -> bool:
        """Tell whether the robot disc (radius + margin) at (x, y) overlaps any geometry."""
        return bool(self._hits(np.array([[x, y]], dtype=float),
                               self.robot_radius + margin)[0])

    def _hits(self, pts: np.ndarray, r: float, objects: bool = True) -> np.ndarray:
        """
        Tell which of pts lie within r of walls and door panels.

        With objects, of the other objects' footprints too.
        """
        hit = np.zeros(len(pts), dtype=bool)
        if len(self._rect_c):
            d = np.maximum(np.abs(pts[:, None, :] - self._rect_c[None]) - self._rect_h[None], 0)
            hit |= ((d ** 2).sum(-1) < r * r).any(1)
        if objects and len(self._circ_c):
            dist = np.linalg.norm(pts[:, None, :] - self._circ_c[None], axis=-1)
            hit |= (dist < r + self._circ_r[None]).any(1)
        return hit

    def random_free_pose(self, rng: np.random.Generator, margin: float = 0.05,
                         clear_ahead_m: float = 0.0, max_tries: int = 2000) -> Pose2D:
        """Draw a uniformly random collision-free pose; with clear_ahead_m, facing free space."""
        hw, hd = self.layout.width / 2, self.layout.depth / 2
        r = self.robot_radius
        for _ in range(max_tries):
            x = float(rng.uniform(-hw + r, hw - r))
            y = float(rng.uniform(-hd + r, hd - r))
            yaw = float(rng.uniform(-math.pi, math.pi))
            if self.collides_at(x, y, margin):
                continue
            if clear_ahead_m > 0 and not self._sweep_clear(x, y, yaw, clear_ahead_m):
                continue
            return Pose2D(x, y, yaw)
        raise RuntimeError('no free pose found')

    def step(self, linear_x: float, angular_z: float, dt: float) -> bool:
        """
        Integrate unicycle kinematics for dt. Returns True if blocked (collision).

        A blocked step still turns (a disc can always rotate in place) but keeps
        its position, so the robot never enters geometry.
        """
        x, y, th = self._pose
        v, w = float(linear_x), float(angular_z)
        if abs(w) > 1e-9:
            nx = x + v / w * (math.sin(th + w * dt) - math.sin(th))
            ny = y - v / w * (math.cos(th + w * dt) - math.cos(th))
        else:
            nx, ny = x + v * dt * math.cos(th), y + v * dt * math.sin(th)
        nth = wrap_angle(th + w * dt)
        blocked = (nx != x or ny != y) and self.collides_at(nx, ny)
        if blocked:
            self.blocked_steps += 1
            if not self._in_contact:
                self.collisions += 1
            self._pose = Pose2D(x, y, nth)
        else:
            self._pose = Pose2D(nx, ny, nth)
        self._in_contact = blocked
        return blocked

    def _sweep_clear(self, x: float, y: float, yaw: float, lookahead_m: float) -> bool:
        n = max(2, int(math.ceil(lookahead_m / 0.04)) + 1)
        s = np.linspace(0.0, lookahead_m, n)
        pts = np.stack([x + s * math.cos(yaw), y + s * math.sin(yaw)], axis=1)
        return not self._hits(pts, self.robot_radius).any()

    def wall_between(self, a: Tuple[float, float], b: Tuple[float, float],
                     step: float = 0.05) -> bool:
        """
        Tell whether a wall (or a door panel) crosses the segment from a to just short of b.

        b may be a door's face, on its own panel. Objects do not count.
        """
        length = math.hypot(b[0] - a[0], b[1] - a[1])
        if length <= 2 * step:
            return False
        end = (b[0] - (b[0] - a[0]) * step / length, b[1] - (b[1] - a[1]) * step / length)
        pts = np.linspace(a, end, max(2, int(math.ceil(length / step)) + 1))
        return bool(self._hits(pts, 1e-3, objects=False).any())

    def scan(self, beams: int = SCAN_BEAMS, range_max: float = SCAN_RANGE_M) -> np.ndarray:
        """
        Return a planar range scan from the robot centre, as a 2-D lidar on the base gives.

        beams ranges (metres) at angles -pi + i * 2pi / beams from the robot heading, to
        the collision geometry (walls, door panels, objects' footprint circles); inf where
        nothing lies within range_max (REP 117's 'no return').
        """
        x, y, yaw = self._pose
        angles = yaw - math.pi + np.arange(beams) * (2.0 * math.pi / beams)
        d = np.stack([np.cos(angles), np.sin(angles)], axis=1)          # (B, 2)
        best = np.full(beams, np.inf)
        origin = np.array([x, y])
        if len(self._rect_c):
            # Slab test against each axis-aligned box.
            with np.errstate(divide='ignore', invalid='ignore'):
                inv = 1.0 / d                                            # (B, 2)
                lo = (self._rect_c - self._rect_h - origin)[None] * inv[:, None]
                hi = (self._rect_c + self._rect_h - origin)[None] * inv[:, None]
            t_near = np.nanmax(np.minimum(lo, hi), axis=2)               # (B, R)
            t_far = np.nanmin(np.maximum(lo, hi), axis=2)
            hit = (t_near <= t_far) & (t_far > 0.0)
            t = np.where(hit, np.maximum(t_near, 0.0), np.inf)
            best = np.minimum(best, t.min(axis=1))
        if len(self._circ_c):
            oc = origin[None] - self._circ_c                              # (C, 2)
            b = d @ oc.T                                                  # (B, C)
            c = (oc ** 2).sum(1)[None] - self._circ_r[None] ** 2
            disc = b * b - c
            with np.errstate(invalid='ignore'):
                t = -b - np.sqrt(disc)
            t = np.where((disc >= 0.0) & (t >= 0.0), t, np.inf)
            best = np.minimum(best, t.min(axis=1))
        return np.where(best <= range_max, best, np.inf)

    def path_clear(self, lookahead_m: float = 0.8) -> bool:
        """
        Tell whether the robot disc can drive lookahead_m straight ahead untouched.

        The corridor is of robot width, rounded at the far end.
        """
        x, y, yaw = self._pose
        return self._sweep_clear(x, y, yaw, lookahead_m)

    # ---------------------------------------------------------------- camera
    def render(self) -> np.ndarray:
        """HxWx3 uint8 RGB from the robot camera; keeps the segmentation mask."""
        return self._render()[0]

    def render_rgbd(self, max_range_m: float = DEPTH_RANGE_M,
                    faults: Optional[DepthFaults] = None) -> Tuple[np.ndarray, np.ndarray]:
        """
        Return (rgb, depth) of one render: HxWx3 uint8 and HxW float32 z depth in metres.

        The depth is the same render's depth buffer, so it is aligned with the colour image
        pixel for pixel (the intrinsics of camera_intrinsics(), the pose of camera_mount()).
        It is the distance along the optical axis (REP 118), linearised with the near and
        far planes; NaN beyond max_range_m and where nothing is hit. faults (off by
        default) add noise and dropouts (NaN) as a real depth camera has them. Keeps the
        segmentation mask, as render() does.
        """
        rgb, buffer = self._render()
        depth = linear_depth(buffer)
        depth[~(depth <= max_range_m)] = np.nan
        if faults is not None and faults.enabled:
            depth = self._with_faults(rgb, depth, faults, max_range_m)
        return rgb, depth

    def _with_faults(self, rgb: np.ndarray, depth: np.ndarray, faults: DepthFaults,
                     max_range_m: float) -> np.ndarray:
        if self._fault_rng is None or self._fault_seed != faults.seed:
            self._fault_rng = np.random.default_rng(faults.seed)
            self._fault_seed = faults.seed
        rng = self._fault_rng
        out = depth.copy()
        drop = np.zeros(depth.shape, dtype=bool)
        if faults.dark_dropout > 0.0:
            dark = rgb.mean(axis=2) < faults.dark_threshold * 255.0
            drop |= dark & (rng.random(depth.shape) < faults.dark_dropout)
        if faults.edge_dropout > 0.0:
            filled = np.where(np.isfinite(depth), depth, np.float32(CAMERA_FAR_M))
            jump = np.zeros(depth.shape, dtype=bool)
            dx = np.abs(np.diff(filled, axis=1)) > faults.edge_jump_m
            dy = np.abs(np.diff(filled, axis=0)) > faults.edge_jump_m
            jump[:, 1:] |= dx
            jump[:, :-1] |= dx
            jump[1:, :] |= dy
            jump[:-1, :] |= dy
            drop |= jump & (rng.random(depth.shape) < faults.edge_dropout)
        if faults.noise_k > 0.0:
            out = out + (faults.noise_k * out * out *
                         rng.standard_normal(depth.shape)).astype(np.float32)
        if faults.min_range_m > 0.0:
            drop |= out < faults.min_range_m
        drop |= ~(out <= max_range_m)
        out[drop] = np.nan
        return out

    def camera_intrinsics(self) -> Intrinsics:
        """Return the camera's pinhole intrinsics (as sim_node's camera_info gives them)."""
        return Intrinsics.from_hfov(self.image_size, self.image_size, self.hfov_rad)

    def camera_mount(self) -> CameraMount:
        """
        Return the camera's pose on the robot: at the base's origin, the layout's height.

        Pitched down by the layout's camera_pitch_deg (negative there: down; positive
        pitch in CameraMount: down, REP 103).
        """
        return CameraMount.from_values(camera_to_base(self.layout))

    def _render(self) -> Tuple[np.ndarray, np.ndarray]:
        """Return (rgb, OpenGL depth buffer) of one render; keeps the segmentation mask."""
        lay = self.layout
        x, y, yaw = self._pose
        z = lay.camera_height
        pitch = math.radians(lay.camera_pitch_deg)
        fwd = (math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch),
               math.sin(pitch))
        view = p.computeViewMatrix([x, y, z], [x + fwd[0], y + fwd[1], z + fwd[2]],
                                   [0.0, 0.0, 1.0], physicsClientId=self._cid)
        n = self.image_size
        _, _, rgba, depth, seg = p.getCameraImage(
            n, n, view, self._proj, renderer=p.ER_TINY_RENDERER, shadow=0,
            lightDirection=list(lay.light_direction), lightColor=[1.0, 1.0, 1.0],
            lightAmbientCoeff=lay.light_ambient, lightDiffuseCoeff=lay.light_diffuse,
            lightSpecularCoeff=0.05, physicsClientId=self._cid)
        image = np.ascontiguousarray(np.asarray(rgba, dtype=np.uint8).reshape(n, n, 4)[:, :, :3])
        self._last_seg = np.asarray(seg, dtype=np.int64).reshape(n, n)
        self._last_image = image
        self._seg_pose = self._pose
        return image, np.asarray(depth, dtype=np.float32).reshape(n, n)

    def ground_truth(self) -> List[ObjectTruth]:
        """Truth for every object, from the last render's mask (renders if stale)."""
        if self._last_seg is None or self._seg_pose != self._pose:
            self.render()
        n_obj = len(self.layout.objects)
        seg = self._last_seg
        ids = seg + 1
        ids = np.where(ids < len(self._lut), ids, 0)  # walls/floor ids beyond lut -> none
        obj = self._lut[ids].ravel() + 1              # 0 = no object
        cols = self._cols
        counts = np.bincount(obj, minlength=n_obj + 1)
        col_sum = np.bincount(obj, weights=cols, minlength=n_obj + 1)
        x, y, yaw = self._pose
        threshold = min_visible_pixels(self.image_size)
        truths = []
        for i, o in enumerate(self.layout.objects):
            dx, dy = o.x - x, o.y - y
            dist = math.hypot(dx, dy)
            bearing = wrap_angle(math.atan2(dy, dx) - yaw)
            count = int(counts[i + 1])
            if count > 0:
                third = int(3 * (col_sum[i + 1] / count + 0.5) / self.image_size)
                image_bearing = BEARINGS[min(max(third, 0), 2)]
            else:
                image_bearing = bearing_label(bearing, self.hfov_rad)
            truths.append(ObjectTruth(
                label=o.label, x=o.x, y=o.y, distance_m=dist, bearing_rad=bearing,
                visible=count >= threshold, pixel_count=count, image_bearing=image_bearing,
                distance='near' if dist <= NEAR_DISTANCE_M else 'far'))
        return truths

    def render_with_truth(self) -> Tuple[np.ndarray, List[ObjectTruth]]:
        """One render, and the truth read from its mask."""
        image = self.render()
        return image, self.ground_truth()

    # ---------------------------------------------------------------- misc
    def top_down(self, path: Optional[Sequence[Sequence[float]]] = None, **kwargs):
        """Return a matplotlib Figure of the layout, the robot and an optional trajectory."""
        trajectory = list(path) if path is not None else [tuple(self._pose)]
        return top_down_figure(self.layout, trajectory, robot_radius=self.robot_radius,
                               **kwargs)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                p.disconnect(physicsClientId=self._cid)
            except p.error:
                pass

    def __enter__(self) -> 'World':
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter teardown: pybullet may be gone
            pass
