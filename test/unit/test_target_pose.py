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

"""The target's pose from the robot's pose, a bearing and a range (vlm_nav.nav.target_pose)."""

import math

import pytest

from vlm_nav.nav.target_pose import target_pose, yaw_quaternion


def test_straight_ahead_from_the_origin():
    assert target_pose((0.0, 0.0, 0.0), 0.0, 2.0) == pytest.approx((2.0, 0.0, 0.0))


def test_bearing_adds_to_yaw_left_positive():
    x, y, yaw = target_pose((1.0, 2.0, math.pi / 2), math.pi / 4, math.sqrt(2.0))
    assert (x, y) == pytest.approx((0.0, 3.0))
    assert yaw == pytest.approx(3 * math.pi / 4)


def test_facing_back_along_x_like_the_find_object_start():
    x, y, yaw = target_pose((1.86, 0.05, math.pi), 0.0, 1.64)
    assert (x, y) == pytest.approx((0.22, 0.05))
    assert abs(yaw) == pytest.approx(math.pi)


def test_yaw_is_wrapped():
    _, _, yaw = target_pose((0.0, 0.0, 3.0), 1.0, 1.0)
    assert -math.pi <= yaw < math.pi and yaw == pytest.approx(4.0 - 2 * math.pi)


@pytest.mark.parametrize('robot, bearing, distance', [
    ((0.0, 0.0, 0.0), 0.0, math.nan), ((0.0, 0.0, 0.0), 0.0, 0.0),
    ((0.0, 0.0, 0.0), 0.0, -1.0), ((0.0, 0.0, 0.0), math.nan, 1.0),
    ((math.inf, 0.0, 0.0), 0.0, 1.0), ((0.0, 0.0, math.nan), 0.0, 1.0)])
def test_unknown_inputs_give_no_pose(robot, bearing, distance):
    assert target_pose(robot, bearing, distance) is None


@pytest.mark.parametrize('yaw', [0.0, 0.7, -2.0, math.pi])
def test_yaw_quaternion_is_unit_and_round_trips(yaw):
    qx, qy, qz, qw = yaw_quaternion(yaw)
    assert qx == qy == 0.0 and math.hypot(qz, qw) == pytest.approx(1.0)
    back = math.atan2(2.0 * qw * qz, 1.0 - 2.0 * qz * qz)
    assert math.cos(back - yaw) == pytest.approx(1.0)
