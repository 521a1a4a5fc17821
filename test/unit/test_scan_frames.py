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

"""A lidar's frame: scan_in_base places a scan taken anywhere level on the robot."""

import math

import numpy as np
import pytest
import room_scans

from vlm_nav.nav.scan_map import Scan, scan_in_base, ScanMap, ScanMount

# A room 6 m x 5 m around the origin with three posts (x, y, radius).
ROOM = (-3.0, 3.0, -2.5, 2.5)
POSTS = ((0.8, 0.1, 0.15), (-1.2, 1.4, 0.25), (1.5, -1.6, 0.2))
BEAMS, RANGE_MAX = 360, 8.0


def raycast(x, y, directions, range_max=RANGE_MAX):
    return room_scans.raycast(x, y, directions, ROOM, POSTS, range_max)


def distance_to_world(px, py):
    """Return how far world points lie from the nearest wall or post surface."""
    walls = np.minimum.reduce([np.abs(px - ROOM[0]), np.abs(px - ROOM[1]),
                               np.abs(py - ROOM[2]), np.abs(py - ROOM[3])])
    posts = [np.abs(np.hypot(px - cx, py - cy) - radius) for cx, cy, radius in POSTS]
    return np.minimum(walls, np.minimum.reduce(posts))


def lidar_scan(base, mount, angle_min=-math.pi, beams=BEAMS,
               increment=2.0 * math.pi / BEAMS):
    """Return the ranges a lidar at mount on a base at pose base (world) reads."""
    bx, by, byaw = base
    lx = bx + mount.x * math.cos(byaw) - mount.y * math.sin(byaw)
    ly = by + mount.x * math.sin(byaw) + mount.y * math.cos(byaw)
    sense = -1.0 if mount.upside_down else 1.0
    angles = angle_min + np.arange(beams) * increment
    return raycast(lx, ly, byaw + mount.yaw + sense * angles)


def base_points(scan: Scan, base):
    """Return the world points of a base-frame scan's returns."""
    ok = scan.valid()
    r, a = np.asarray(scan.ranges)[ok], scan.angles[ok] + base[2]
    return base[0] + r * np.cos(a), base[1] + r * np.sin(a)


def occupied(scan: Scan, base, grid=None, times=5):
    """Return the occupied cells of a map of the scan taken times over (a robot at rest)."""
    grid = ScanMap() if grid is None else grid
    for _ in range(times):
        grid.integrate(base, scan)
    return grid.occupied


BASE = (0.33, -0.27, 0.4)          # walls off the map's cell boundaries


def test_the_identity_mount_keeps_the_scan_as_it_is():
    ranges = lidar_scan(BASE, ScanMount())
    scan = scan_in_base(ScanMount(), ranges, -math.pi, 2.0 * math.pi / BEAMS, RANGE_MAX)
    direct = Scan(-math.pi, 2.0 * math.pi / BEAMS, ranges, RANGE_MAX)
    assert scan == Scan(scan.angle_min, scan.angle_increment, scan.ranges, scan.range_max)
    assert (scan.angle_min, scan.angle_increment, scan.range_max, scan.range_min) == \
        (direct.angle_min, direct.angle_increment, direct.range_max, direct.range_min)
    assert np.array_equal(scan.ranges, direct.ranges)
    assert np.array_equal(occupied(scan, BASE), occupied(direct, BASE))


@pytest.mark.parametrize('mount', [ScanMount(yaw=math.pi / 2), ScanMount(yaw=math.pi),
                                   ScanMount(upside_down=True),
                                   ScanMount(yaw=-math.pi / 4, upside_down=True)],
                         ids=['yaw90', 'yaw180', 'upside_down', 'upside_down_yaw-45'])
def test_a_lidar_turned_at_the_origin_reads_as_the_base_would(mount):
    """Turned by a whole number of beams, or upside down, the beams land on the base's."""
    base_link = lidar_scan(BASE, ScanMount())
    scan = scan_in_base(mount, lidar_scan(BASE, mount), -math.pi, 2.0 * math.pi / BEAMS,
                        RANGE_MAX)
    assert scan.angle_min == pytest.approx(-math.pi)
    assert scan.angle_increment == pytest.approx(2.0 * math.pi / BEAMS)
    np.testing.assert_allclose(scan.ranges, base_link, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize('mount', [ScanMount(0.25, 0.1, math.pi / 2),
                                   ScanMount(-0.2, -0.15, 2.5, upside_down=True),
                                   ScanMount(0.15, 0.0, 0.0)],
                         ids=['ahead_left_yaw90', 'behind_upside_down', 'ahead'])
def test_an_offset_lidar_gives_the_base_frame_points_of_a_base_link_scan(mount):
    """
    An offset, turned lidar's returns land on the world's surfaces, as the base's do.

    Binned onto the base's beams they move by at most half a beam across; the map built
    from them holds the same occupied cells as one built from a base_link scan.
    """
    step = 2.0 * math.pi / BEAMS
    scan = scan_in_base(mount, lidar_scan(BASE, mount), -math.pi, step, RANGE_MAX)
    direct = Scan(-math.pi, step, lidar_scan(BASE, ScanMount()), RANGE_MAX)
    px, py = base_points(scan, BASE)
    r = np.asarray(scan.ranges)[scan.valid()]
    assert len(r) > 0.8 * BEAMS
    assert np.all(distance_to_world(px, py) <= r * step / 2.0 + 1e-9)
    grid = ScanMap()
    ours, theirs = occupied(scan, BASE, grid), occupied(direct, BASE)
    overlap = (ours & theirs).sum() / (ours | theirs).sum()
    # (what each sees behind the posts differs: they look from 0.2 m apart)
    assert overlap > 0.8, overlap
    cx, cy = grid.centre(*np.nonzero(ours))
    assert np.all(distance_to_world(cx, cy) < 0.75 * grid.resolution)
    for lookahead in (0.3, 0.5, 0.8, 1.5):
        assert scan.corridor_clear(lookahead, 0.25) == direct.corridor_clear(lookahead, 0.25)
    assert scan.nearest_side(1.0) == direct.nearest_side(1.0)
    # Away from the post's shadow (behind it seen from the base, hidden from the lidar:
    # nan, which Scan reads as no return), the ranges toward bearings agree.
    assert np.isnan(scan.ranges).sum() < 0.1 * BEAMS
    away = np.array([-2.5, -1.0, -0.5, 1.0, 2.5])
    np.testing.assert_allclose(scan.range_toward(away), direct.range_toward(away),
                               atol=0.06)


def test_a_partial_arc_keeps_its_arc_from_the_base():
    """A 270 degree lidar 0.2 m ahead facing forward: its arc, seen from the base."""
    mount, step = ScanMount(0.2, 0.0, 0.0), math.radians(0.5)
    beams = 541
    ranges = lidar_scan(BASE, mount, -math.radians(135.0), beams, step)
    scan = scan_in_base(mount, ranges, -math.radians(135.0), step, RANGE_MAX)
    assert -math.pi <= scan.angle_min < 0.0
    assert scan.angle_increment == step
    end = scan.angle_min + (len(scan.ranges) - 1) * step
    assert math.radians(130.0) < end <= math.pi
    direct = Scan(-math.pi, 2.0 * math.pi / BEAMS, lidar_scan(BASE, ScanMount()), RANGE_MAX)
    ahead = np.array([-1.0, -0.5, 1.0])
    np.testing.assert_allclose(scan.range_toward(ahead), direct.range_toward(ahead),
                               atol=0.06)
    assert scan.range_toward(np.array([math.pi - 0.01]))[0] == -np.inf   # behind: unseen


def test_no_return_and_bad_beams():
    """No return stays free to range_max (moved out by the offset); nan says nothing."""
    mount = ScanMount(0.1, 0.0, math.pi)
    ranges = np.full(BEAMS, np.inf)
    ranges[:10] = np.nan
    ranges[10] = 0.01                                # below range_min: no information
    scan = scan_in_base(mount, ranges, -math.pi, 2.0 * math.pi / BEAMS, RANGE_MAX, 0.05)
    assert scan.range_max == pytest.approx(RANGE_MAX + 0.1)
    assert scan.range_min == 0.0
    assert not scan.valid().any()
    assert np.isposinf(scan.ranges).sum() >= BEAMS - 20
    assert scan.corridor_clear(2.0, 0.3)


def test_mounts_from_values_and_quaternions():
    assert ScanMount.from_values([0.1, -0.2, 0.5]) == ScanMount(0.1, -0.2, 0.5)
    assert ScanMount.from_values([0.0, 0.0, 0.0]).identity
    six = ScanMount.from_values([0.1, -0.2, 0.3, math.pi, 0.0, 0.5])
    assert six.upside_down and (six.x, six.y) == (0.1, -0.2)
    assert six.yaw == pytest.approx(0.5)
    # roll pi and pitch pi is a plain turn by pi
    turned = ScanMount.from_values([0.0, 0.0, 0.0, math.pi, math.pi, 0.5])
    assert not turned.upside_down and turned.yaw == pytest.approx(0.5 - math.pi)
    assert ScanMount.from_values([0, 0, 0, -math.pi, 0, 0]).upside_down
    for values, words in (([0.0, 0.0, 0.0, 0.5, 0.0, 0.0], 'tilted 28.6 deg'),
                          ([0.0, 0.0, 0.0, 0.0, 0.2, 0.0], 'tilted 11.5 deg'),
                          ([0.0, 0.0, 0.0, 0.0], '4 values'),
                          ([0.0, math.nan, 0.0], 'not all finite')):
        with pytest.raises(ValueError, match=words):
            ScanMount.from_values(values)
    half = math.sqrt(0.5)
    q = ScanMount.from_quaternion(0.2, 0.0, 0.0, 0.0, half, half)      # yaw pi/2
    assert q.yaw == pytest.approx(math.pi / 2) and not q.upside_down
    q = ScanMount.from_quaternion(0.0, 0.0, 1.0, 0.0, 0.0, 0.0)        # roll pi
    assert q.upside_down and q.yaw == pytest.approx(0.0)
    with pytest.raises(ValueError, match='not a quaternion'):
        ScanMount.from_quaternion(0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
