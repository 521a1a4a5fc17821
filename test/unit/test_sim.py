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

"""The built-in simulator, without ROS: layouts, motion, collisions, camera, truth."""

import math

import numpy as np
import pytest

from vlm_nav.sim import (
    bearing_label, describe, Layout, make_layout, min_visible_pixels, NEAR_DISTANCE_M,
    OBJECT_LABELS, ObjectSpec, Rect, sample_view, save_top_down, World)
from vlm_nav.sim.layout import COLORS, WALL_THICKNESS

HALF = 4.0   # half size of the hand-made test arena


def _arena(objects, floor=(0.5, 0.5, 0.5)) -> Layout:
    """Build an 8 m x 8 m room, no interior walls, fixed light and camera."""
    t = WALL_THICKNESS / 2
    grey = (0.7, 0.7, 0.7)
    walls = [Rect(0.0, -HALF - t, HALF + 2 * t, t, 1.8, grey),
             Rect(0.0, HALF + t, HALF + 2 * t, t, 1.8, grey),
             Rect(-HALF - t, 0.0, t, HALF + 2 * t, 1.8, grey),
             Rect(HALF + t, 0.0, t, HALF + 2 * t, 1.8, grey)]
    return Layout(seed=-1, width=2 * HALF, depth=2 * HALF, walls=walls, objects=objects,
                  floor_color=floor, wall_color=grey, light_direction=(0.3, 0.2, 0.9),
                  light_ambient=0.6, light_diffuse=0.4, camera_height=0.45,
                  camera_pitch_deg=-10.0)


def _ball(x, y, label='red ball'):
    return ObjectSpec(label, x, y, 0.0, 0.16, COLORS[label.split()[0]])


def _red_mask(image):
    img = image.astype(int)
    return (img[:, :, 0] > 120) & (img[:, :, 1] < 60) & (img[:, :, 2] < 60)


@pytest.fixture(scope='module')
def red_ball_world():
    with World(_arena([_ball(2.0, 0.0)])) as world:
        yield world


def test_layouts_reproducible_and_valid():
    for seed in range(40):
        a, b = make_layout(seed), make_layout(seed)
        assert a == b
        labels = a.labels
        assert 3 <= len(labels) <= 6
        assert len(set(labels)) == len(labels)
        assert set(labels) <= set(OBJECT_LABELS)
        assert 6.0 <= a.width <= 10.0 and 6.0 <= a.depth <= 10.0
        assert 4 <= len(a.walls) <= 8
        world = World(a)
        try:
            for o in a.objects:
                if o.panel is None:
                    # Clear of walls and of each other.
                    for w in a.walls:
                        dx = max(abs(o.x - w.cx) - w.hx, 0.0)
                        dy = max(abs(o.y - w.cy) - w.hy, 0.0)
                        assert math.hypot(dx, dy) >= o.radius
                for q in a.objects:
                    if q is not o:
                        assert math.hypot(o.x - q.x, o.y - q.y) > o.radius + q.radius
            # There is room for the robot.
            world.random_free_pose(np.random.default_rng(seed), clear_ahead_m=1.0)
        finally:
            world.close()
    assert make_layout(1) != make_layout(2)
    assert len({make_layout(s).floor_color for s in range(10)}) == 10


def test_same_seed_same_pixels():
    views = [sample_view(7, 3, image_size=64), sample_view(7, 3, image_size=64)]
    assert np.array_equal(views[0][0], views[1][0])
    assert views[0][1] == views[1][1] and views[0][2] == views[1][2]
    with World(make_layout(7), image_size=64) as w1, World(make_layout(7), image_size=64) as w2:
        for w in (w1, w2):
            w.reset_robot(0.3, -0.2, 1.0)
        assert np.array_equal(w1.render(), w2.render())


def test_render_shape_and_object_third(red_ball_world):
    world = red_ball_world
    for yaw, third in ((0.0, 'center'), (-0.35, 'left'), (0.35, 'right')):
        world.reset_robot(0.0, 0.0, yaw)
        image = world.render()
        assert image.shape == (96, 96, 3) and image.dtype == np.uint8
        # Independent check from colours: red pixels sit in the expected third.
        cols = np.nonzero(_red_mask(image))[1]
        assert len(cols) > 20
        assert ('left', 'center', 'right')[int(cols.mean() * 3 / 96)] == third
        truth, = world.ground_truth()
        assert truth.visible and truth.image_bearing == third
        assert truth.distance == 'far' and truth.label == 'red ball'
    # Facing away: nothing red, not visible.
    world.reset_robot(0.0, 0.0, math.pi)
    assert not _red_mask(world.render()).any()
    truth, = world.ground_truth()
    assert not truth.visible and truth.pixel_count == 0
    assert describe([truth]) == 'nothing.'


def test_occlusion_hides_object():
    box = ObjectSpec('blue box', 1.0, 0.0, 0.0, 0.26, COLORS['blue'])
    with World(_arena([_ball(2.5, 0.0), box])) as world:
        world.reset_robot(0.0, 0.0, 0.0)
        ball, blue = world.ground_truth()
        assert blue.visible and not ball.visible
        world.reset_robot(0.0, 0.5, -math.atan2(0.5, 2.5))    # step aside: both seen
        ball, blue = world.ground_truth()
        assert blue.visible and ball.visible


def test_step_kinematics(red_ball_world):
    world = red_ball_world
    world.reset_robot(0.0, -1.0, 0.5)
    assert world.step(0.5, 0.0, 1.0) is False
    x, y, yaw = world.robot_pose
    assert x == pytest.approx(0.5 * math.cos(0.5)) and y == pytest.approx(-1 + 0.5 * math.sin(0.5))
    world.step(0.0, 1.0, 0.5)               # turn in place
    assert world.robot_pose.yaw == pytest.approx(1.0)
    assert world.robot_pose[:2] == pytest.approx((x, y))
    world.reset_robot(0.0, -1.0, 0.0)
    for _ in range(10):                     # arc: v/w radius 1 m, quarter turn
        world.step(0.5, 0.5, math.pi / 10)
    assert world.robot_pose == pytest.approx((1.0, 0.0, math.pi / 2), abs=1e-9)


def test_wall_blocks_and_counts_collision(red_ball_world):
    world = red_ball_world
    world.reset_robot(-3.0, -2.0, math.pi)   # facing the x = -4 wall, 1 m away
    assert world.path_clear(0.7) and not world.path_clear(0.9)
    before = world.collisions
    blocked = [world.step(0.5, 0.0, 0.05) for _ in range(60)]
    assert any(blocked) and blocked[-1]
    x = world.robot_pose.x
    assert -HALF + world.robot_radius <= x < -HALF + world.robot_radius + 0.05
    assert world.collisions == before + 1  # one contact event, not one per step
    world.step(-0.5, 0.0, 0.2)               # backing off is free
    world.step(0.5, 0.0, 0.5)                # second contact
    assert world.collisions == before + 2
    # Objects block too.
    world.reset_robot(1.0, 0.0, 0.0)        # ball at (2, 0), radius 0.16
    assert not world.path_clear(1.0)
    for _ in range(40):
        world.step(0.5, 0.0, 0.05)
    assert world.robot_pose.x <= 2.0 - 0.16 - world.robot_radius + 1e-9


def test_ground_truth_matches_geometry():
    rng = np.random.default_rng(0)
    checked = 0
    for seed in range(6):
        with World(make_layout(seed), image_size=64) as world:
            for _ in range(10):
                pose = world.random_free_pose(rng)
                world.reset_robot(*pose)
                world.render()
                for t in world.ground_truth():
                    dx, dy = t.x - pose.x, t.y - pose.y
                    assert t.distance_m == pytest.approx(math.hypot(dx, dy))
                    b = math.atan2(dy, dx) - pose.yaw
                    assert math.cos(t.bearing_rad) == pytest.approx(math.cos(b))
                    assert math.sin(t.bearing_rad) == pytest.approx(math.sin(b))
                    assert t.distance == ('near' if t.distance_m <= NEAR_DISTANCE_M else 'far')
                    assert t.visible == (t.pixel_count >= min_visible_pixels(64))
                    if t.visible:
                        checked += 1
                        # Within the field of view, widened by the object's own size.
                        half = world.hfov_rad / 2 + math.atan2(0.6, max(t.distance_m, 0.3))
                        assert abs(t.bearing_rad) < half
    assert checked > 5


def test_image_third_agrees_with_bearing(red_ball_world):
    world = red_ball_world
    agree = 0
    for yaw in np.linspace(-0.5, 0.5, 21):
        world.reset_robot(0.0, 0.0, float(yaw))
        truth, = world.ground_truth()
        expected = bearing_label(truth.bearing_rad, world.hfov_rad)
        u = math.tan(truth.bearing_rad) / math.tan(world.hfov_rad / 2)
        if truth.visible and min(abs(u - 1 / 3), abs(u + 1 / 3)) > 0.08:
            assert truth.image_bearing == expected
            agree += 1
    assert agree >= 12


def test_near_label_and_path_clear_on_sample_views(tmp_path):
    near = far = 0
    thirds = set()
    for view in range(40):
        image, truths, clear = sample_view(3, view, image_size=64)
        assert image.shape == (64, 64, 3)
        assert isinstance(clear, bool)
        for t in truths:
            if t.visible:
                near += t.distance == 'near'
                far += t.distance == 'far'
                thirds.add(t.image_bearing)
    assert near and far and thirds == {'left', 'center', 'right'}
    png = save_top_down(str(tmp_path / 'top.png'), make_layout(3),
                        [(0.0, 0.0, 0.0), (0.5, 0.2, 0.3)], target=make_layout(3).labels[0])
    with open(png, 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
