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

"""The simulator's depth camera and the depth-to-planar-scan conversion, against geometry."""

import dataclasses
import math

from builtin_interfaces.msg import Time
import numpy as np
import pytest

from vlm_nav.nav.depth_scan import (
    CameraMount, depth_scan, Intrinsics, range_at_bearing)
from vlm_nav.nav.scan_map import ScanMap
from vlm_nav.ros.image import depth_to_metres, ImageError, metres_to_depth_image
from vlm_nav.sim import Layout, make_layout, ObjectSpec, Rect, World
from vlm_nav.sim.layout import COLORS, WALL_THICKNESS
from vlm_nav.sim.world import DepthFaults, linear_depth

HALF = 4.0   # half size of the test arena: the wall's inner face is 4 m from its centre


def _arena(objects, pitch_deg=-10.0, height=0.45) -> Layout:
    t = WALL_THICKNESS / 2
    grey = (0.7, 0.7, 0.7)
    walls = [Rect(0.0, -HALF - t, HALF + 2 * t, t, 1.8, grey),
             Rect(0.0, HALF + t, HALF + 2 * t, t, 1.8, grey),
             Rect(-HALF - t, 0.0, t, HALF + 2 * t, 1.8, grey),
             Rect(HALF + t, 0.0, t, HALF + 2 * t, 1.8, grey)]
    return Layout(seed=-1, width=2 * HALF, depth=2 * HALF, walls=walls, objects=objects,
                  floor_color=(0.5, 0.5, 0.5), wall_color=grey,
                  light_direction=(0.3, 0.2, 0.9), light_ambient=0.6, light_diffuse=0.4,
                  camera_height=height, camera_pitch_deg=pitch_deg)


def _thing(label, x, y, radius=0.16, color=None):
    return ObjectSpec(label, x, y, 0.0, radius, color or COLORS[label.split()[0]])


def _points(world, depth):
    """Back-project every valid pixel into the world frame (robot at its pose)."""
    k, m = world.camera_intrinsics(), world.camera_mount()
    v, u = np.nonzero(np.isfinite(depth))
    z = depth[v, u].astype(float)
    body = np.stack([z, -(u - k.cx) / k.fx * z, -(v - k.cy) / k.fy * z])
    p = m.rotation() @ body + np.array([[m.x], [m.y], [m.z]])
    x, y, yaw = world.robot_pose
    c, s = math.cos(yaw), math.sin(yaw)
    return x + c * p[0] - s * p[1], y + s * p[0] + c * p[1], p[2]


@pytest.fixture(scope='module')
def empty():
    with World(_arena([])) as world:
        yield world


def test_depth_is_z_metres_aligned_with_the_colour_image(empty):
    empty.reset_robot(0.0, 0.0, 0.0)
    rgb, depth = empty.render_rgbd(max_range_m=10.0)
    assert depth.dtype == np.float32 and depth.shape == rgb.shape[:2] == (96, 96)
    x, y, z = _points(empty, depth)
    wall, floor = z > 0.05, np.abs(z) < 0.02
    # Every pixel above the floor lies on the wall's face at x = 4 m, the rest on the floor
    # (but for the row where they meet).
    assert wall.sum() > 1000 and np.abs(x[wall] - HALF).max() < 0.03
    assert floor.sum() > 1000 and (wall | floor).sum() >= np.isfinite(depth).sum() - 2 * 96
    # Aligned: in each column the colour changes from wall to floor where the depth does.
    k, m = empty.camera_intrinsics(), empty.camera_mount()
    v, u = np.mgrid[0:96, 0:96]
    r = m.rotation()
    height = m.z + depth * (r[2, 0] - r[2, 1] * (u - k.cx) / k.fx - r[2, 2] * (v - k.cy) / k.fy)
    depth_edge = np.argmax(height < 0.05, axis=0)        # first floor row of each column
    luminance = rgb.astype(float).mean(axis=2)
    colour_edge = np.argmax(np.abs(np.diff(luminance[8:], axis=0)), axis=0) + 9
    assert np.abs(colour_edge - depth_edge).max() <= 1
    # The GL depth buffer's linearisation at its ends.
    assert linear_depth(np.array([0.0]))[0] == pytest.approx(0.05)
    assert linear_depth(np.array([1.0]))[0] == pytest.approx(25.0)


def test_depth_beyond_max_range_is_nan(empty):
    empty.reset_robot(0.0, 0.0, 0.0)
    _, depth = empty.render_rgbd(max_range_m=3.0)
    assert np.isnan(depth).any() and np.nanmax(depth) <= 3.0
    _, depth = empty.render_rgbd(max_range_m=25.0)
    assert np.isfinite(depth).all()      # walls and floor everywhere


def test_a_wall_at_a_known_distance(empty):
    empty.reset_robot(0.0, 0.0, 0.0)
    _, depth = empty.render_rgbd()
    scan = depth_scan(depth, empty.camera_intrinsics(), empty.camera_mount(), 6.0)
    assert 70 < len(scan.ranges) < 96 and scan.valid().all()
    expected = HALF / np.cos(scan.angles)
    assert np.abs(scan.ranges - expected).max() < 0.04
    # The arc is the camera's horizontal field of view (narrowed at the top rows by pitch).
    span = scan.angle_increment * (len(scan.ranges) - 1)
    assert math.radians(50.0) < span <= math.radians(60.0)
    assert abs(scan.angle_min + span / 2.0) < 1e-9
    # It agrees with the simulator's lidar along the same bearings.
    lidar = empty.scan(720, 8.0)
    index = np.rint((scan.angles + math.pi) / (2 * math.pi / 720)).astype(int) % 720
    assert np.abs(scan.ranges - lidar[index]).max() < 0.04


def test_turned_and_offset_the_scan_is_the_base_frame(empty):
    # The camera 0.3 m ahead of the base, base at (-0.3, 0), facing +x: the wall is 4.3 m
    # from the base's origin.
    empty.reset_robot(0.0, 1.0, 0.0)
    _, depth = empty.render_rgbd()
    m = dataclasses.replace(empty.camera_mount(), x=0.3)
    scan = depth_scan(depth, empty.camera_intrinsics(), m, 6.0)
    centre = np.argmin(np.abs(scan.angles))
    assert scan.ranges[centre] == pytest.approx(HALF + 0.3, abs=0.03)
    # Facing -y at (0, 1): the wall 5 m away is beyond 4.5 m: free (inf), not an obstacle.
    empty.reset_robot(0.0, 1.0, -math.pi / 2)
    _, depth = empty.render_rgbd()
    scan = depth_scan(depth, empty.camera_intrinsics(), empty.camera_mount(), 4.5)
    assert np.isposinf(scan.ranges).all()


def test_the_floor_is_not_an_obstacle_and_pitch_matters(empty):
    empty.reset_robot(0.0, 0.0, 0.0)
    _, depth = empty.render_rgbd(max_range_m=3.5)     # the wall (4 m) beyond range
    k, m = empty.camera_intrinsics(), empty.camera_mount()
    scan = depth_scan(depth, k, m, 3.5)
    assert np.isposinf(scan.ranges).all()             # measured the floor: free
    # Placed as if it looked level, the same floor rises ahead into the band.
    level = dataclasses.replace(m, pitch=0.0)
    assert np.isfinite(depth_scan(depth, k, level, 3.5).ranges).any()


@pytest.mark.parametrize('pitch_deg,height', [(-8.0, 0.4), (-14.0, 0.55), (0.0, 0.5)])
def test_pitch_and_height_of_the_layout(pitch_deg, height):
    with World(_arena([], pitch_deg, height)) as world:
        world.reset_robot(1.0, 0.0, 0.0)
        _, depth = world.render_rgbd()
        m = world.camera_mount()
        assert m.z == height and m.pitch == pytest.approx(-math.radians(pitch_deg))
        scan = depth_scan(depth, world.camera_intrinsics(), m, 6.0)
        assert np.abs(scan.ranges - (HALF - 1.0) / np.cos(scan.angles)).max() < 0.04


def test_a_box_and_a_ball_and_the_target_range():
    box = ObjectSpec('blue box', 2.0, 0.0, 0.0, 0.26, COLORS['blue'])
    ball = _thing('red ball', 2.5, 1.2)
    with World(_arena([box, ball])) as world:
        world.reset_robot(0.0, 0.0, 0.0)
        _, depth = world.render_rgbd()
        k, m = world.camera_intrinsics(), world.camera_mount()
        scan = depth_scan(depth, k, m, 6.0)
        # The box's face at x = 2 - 0.18 for beams within its half width.
        on_box = np.abs(np.tan(scan.angles) * 1.82) < 0.15
        assert on_box.sum() >= 6
        assert np.abs(scan.ranges[on_box] - 1.82 / np.cos(scan.angles[on_box])).max() < 0.04
        # The ball: its nearest surface, 0.16 m before its centre.
        bearing = math.atan2(1.2, 2.5)
        r = float(scan.range_toward(np.array([bearing]))[0])
        assert r == pytest.approx(math.hypot(2.5, 1.2) - 0.16, abs=0.06)
        # The target's range at its bearing: the ball, not the wall behind or the floor.
        got = range_at_bearing(depth, k, m, bearing)
        assert got == pytest.approx(math.hypot(2.5, 1.2) - 0.1, abs=0.1)
        # A bearing off by 3 degrees still finds the ball in front of the wall.
        assert range_at_bearing(depth, k, m, bearing + math.radians(3)) < 2.9
        # Masked to nothing, or toward the open wall: no ball.
        assert math.isnan(range_at_bearing(depth, k, m, bearing,
                                           mask=np.zeros(depth.shape, bool)))
        assert range_at_bearing(depth, k, m, math.radians(-20.0)) > HALF


def test_nothing_measured_reads_nan_and_the_map_learns_nothing(empty):
    empty.reset_robot(0.0, 0.0, 0.0)
    _, depth = empty.render_rgbd()
    depth[:, :48] = np.nan                        # the left half returned nothing
    k, m = empty.camera_intrinsics(), empty.camera_mount()
    scan = depth_scan(depth, k, m, 6.0)
    left = scan.angles > 0.02
    right = scan.angles < -0.02
    assert np.isnan(scan.ranges[left]).all() and np.isfinite(scan.ranges[right]).all()
    grid = ScanMap()
    grid.integrate((0.0, 0.0, 0.0), scan)
    grid.integrate((0.0, 0.0, 0.0), scan)
    i, j = grid.cell(np.array([2.0, 2.0]), np.array([-0.5, 0.5]))
    assert grid.free[i[0], j[0]] and not grid.free[i[1], j[1]]
    # A depth of +inf is a measurement: beyond range, free.
    depth[:, :48] = np.inf
    assert not np.isnan(depth_scan(depth, k, m, 6.0).ranges).any()


def test_decimation_and_beams(empty):
    empty.reset_robot(0.0, 0.0, 0.0)
    _, depth = empty.render_rgbd()
    k, m = empty.camera_intrinsics(), empty.camera_mount()
    scan = depth_scan(depth, k, m, 6.0, beams=24, pixel_step=2)
    assert len(scan.ranges) == 24
    assert np.abs(scan.ranges - HALF / np.cos(scan.angles)).max() < 0.08
    with pytest.raises(ValueError, match='does not match'):
        depth_scan(depth[:, :90], k, m, 6.0)


def test_16uc1_millimetres_and_32fc1_metres(empty):
    empty.reset_robot(0.0, 0.0, 0.3)
    _, depth = empty.render_rgbd()
    depth[10, 10] = np.nan
    k, m = empty.camera_intrinsics(), empty.camera_mount()
    expected = depth_scan(depth, k, m, 6.0).ranges
    for encoding, tolerance in (('32FC1', 0.0), ('16UC1', 0.0006)):
        msg = metres_to_depth_image(depth, Time(), 'camera_optical', encoding)
        assert msg.encoding == encoding and msg.step == 96 * (4 if encoding == '32FC1' else 2)
        back = depth_to_metres(msg)
        assert np.isnan(back[10, 10])
        assert np.nanmax(np.abs(back - depth)) <= tolerance + 1e-6
        got = depth_scan(back, k, m, 6.0).ranges
        np.testing.assert_allclose(got, expected, atol=0.002, equal_nan=True)
    raw = metres_to_depth_image(depth, Time(), 'camera_optical', '16UC1')
    assert np.frombuffer(raw.data, '<u2')[10 * 96 + 10] == 0       # invalid: 0 mm
    # Big-endian 16UC1 is read in its order.
    big = metres_to_depth_image(depth, Time(), 'camera_optical', '16UC1')
    big.data = np.frombuffer(raw.data, '<u2').astype('>u2').tobytes()
    big.is_bigendian = 1
    assert np.nanmax(np.abs(depth_to_metres(big) - depth)) < 0.0006
    for bad in ('rgb8', 'mono8', '8UC1'):
        msg = metres_to_depth_image(depth, Time(), 'camera_optical', '32FC1')
        msg.encoding = bad
        with pytest.raises(ImageError, match='not a depth encoding'):
            depth_to_metres(msg)
    msg = metres_to_depth_image(depth, Time(), 'camera_optical', '32FC1')
    msg.data = msg.data[:-4]
    with pytest.raises(ImageError, match='bytes'):
        depth_to_metres(msg)


def test_intrinsics_and_mounts():
    k = Intrinsics.from_hfov(96, 96, math.radians(60.0))
    assert k.hfov_rad == pytest.approx(math.radians(60.0))
    assert Intrinsics.from_k([k.fx, 0, k.cx, 0, k.fy, k.cy, 0, 0, 1], 96, 96) == k
    with pytest.raises(ValueError, match='focal'):
        Intrinsics.from_k([0.0] * 9, 96, 96)
    with pytest.raises(ValueError, match=r'give \[x, y, z'):
        CameraMount.from_values([0.0, 0.0, 0.4])
    mount = CameraMount.from_values([0.1, -0.05, 0.4, 0.0, 0.2, 0.3])
    assert (mount.x, mount.y, mount.z, mount.roll, mount.pitch, mount.yaw) == \
        (0.1, -0.05, 0.4, 0.0, 0.2, 0.3)
    # The same pose as tf2 gives it for the optical frame: rotation base <- optical.
    r = mount.rotation() @ np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])
    w = math.sqrt(max(0.0, 1.0 + r[0, 0] + r[1, 1] + r[2, 2])) / 2.0
    q = ((r[2, 1] - r[1, 2]) / (4 * w), (r[0, 2] - r[2, 0]) / (4 * w),
         (r[1, 0] - r[0, 1]) / (4 * w), w)
    back = CameraMount.from_quaternion(0.1, -0.05, 0.4, *q)
    for name in ('x', 'y', 'z', 'yaw', 'pitch', 'roll'):
        assert getattr(back, name) == pytest.approx(getattr(mount, name), abs=1e-9)
    level = CameraMount.from_quaternion(0.0, 0.0, 0.3, 0.0, 0.0, 0.0, 1.0, optical=False)
    assert level == CameraMount(0.0, 0.0, 0.3, 0.0, 0.0, 0.0)


# ---- the simulator's depth faults (off by default) ---------------------------------------


def test_faults_are_off_by_default(empty):
    empty.reset_robot(0.5, 0.5, 0.2)
    _, a = empty.render_rgbd()
    _, b = empty.render_rgbd(faults=DepthFaults())
    assert np.array_equal(a, b, equal_nan=True)
    assert not DepthFaults().enabled


def test_noise_grows_with_range(empty):
    faults = DepthFaults(noise_k=0.01, seed=3)
    errors = {}
    for distance in (1.0, 3.0):
        empty.reset_robot(HALF - distance, 0.0, 0.0)
        _, clean = empty.render_rgbd()
        _, noisy = empty.render_rgbd(faults=faults)
        wall = np.abs(clean - distance * 0.985) < 0.5     # rows on the wall, about z
        diff = (noisy - clean)[wall & np.isfinite(noisy)]
        errors[distance] = (float(np.std(diff)), float(np.nanmean(clean[wall])))
    for distance, (sigma, z) in errors.items():
        assert sigma == pytest.approx(0.01 * z * z, rel=0.3)
    assert errors[3.0][0] > 5 * errors[1.0][0]


def test_dropouts_on_dark_and_thin_things_and_a_minimum_range():
    dark = _thing('blue box', 1.5, 0.0, 0.26, (0.02, 0.02, 0.02))
    chair = ObjectSpec('red chair', 1.2, -0.9, 0.0, 0.3, COLORS['red'])
    with World(_arena([dark, chair])) as world:
        world.reset_robot(0.0, 0.0, 0.0)
        rgb, clean = world.render_rgbd()
        is_dark = rgb.mean(axis=2) < 0.15 * 255
        assert is_dark.sum() > 100
        _, depth = world.render_rgbd(faults=DepthFaults(dark_dropout=1.0))
        assert np.isnan(depth[is_dark]).all()
        assert np.array_equal(np.isnan(depth[~is_dark]), np.isnan(clean[~is_dark]))
        # With the dark box gone from the depth, the scan sees through it to the wall.
        k, m = world.camera_intrinsics(), world.camera_mount()
        assert depth_scan(clean, k, m, 6.0).range_toward(np.array([0.0]))[0] < 1.4
        assert depth_scan(depth, k, m, 6.0).range_toward(np.array([0.0]))[0] > 3.9
        # Edges: pixels beside a depth jump (the chair's legs and back, the box's sides).
        _, edged = world.render_rgbd(faults=DepthFaults(edge_dropout=1.0))
        lost = np.isnan(edged) & np.isfinite(clean)
        assert 30 < lost.sum() < 0.2 * clean.size
        _, half = world.render_rgbd(faults=DepthFaults(edge_dropout=0.5, seed=1))
        assert 0.3 * lost.sum() < (np.isnan(half) & np.isfinite(clean)).sum() < 0.7 * lost.sum()
        # Minimum range: nothing nearer reads valid.
        _, near = world.render_rgbd(faults=DepthFaults(min_range_m=1.0))
        assert np.nanmin(near) >= 1.0 and np.isnan(near[clean < 1.0]).all()


def test_depth_on_a_generated_layout_agrees_with_the_lidar():
    layout = make_layout(3000001)
    with World(layout) as world:
        rng = np.random.default_rng(5)
        agree, total = 0, 0
        for _ in range(6):
            world.reset_robot(*world.random_free_pose(rng, clear_ahead_m=0.5))
            _, depth = world.render_rgbd()
            scan = depth_scan(depth, world.camera_intrinsics(), world.camera_mount(), 6.0)
            lidar = world.scan(720, 6.0)
            index = np.rint((scan.angles + math.pi) / (2 * math.pi / 720)).astype(int) % 720
            both = np.isfinite(scan.ranges) & np.isfinite(lidar[index])
            agree += int((np.abs(scan.ranges - lidar[index])[both] < 0.1).sum())
            total += int(both.sum())
        # The lidar sees things as their collision circles, the camera their shapes.
        assert total > 300 and agree / total > 0.85
