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
The target's pose in the odometry frame, from the robot's pose and a range at a bearing.

Pure geometry, no ROS: the navigator publishes the result as vlm_nav/target_pose.
"""

import math
from typing import Optional, Tuple

Pose = Tuple[float, float, float]            # x, y, yaw (odometry frame)


def target_pose(robot: Pose, bearing_rad: float, range_m: float) -> Optional[Pose]:
    """
    Return the target's (x, y, yaw) seen at bearing_rad and range_m from the robot.

    The position is the robot's plus range_m along its yaw plus the bearing (+ = left,
    REP 103); yaw faces from the robot to the target. None when any input is not finite
    or the range is not positive.
    """
    x, y, yaw = robot
    if not all(math.isfinite(v) for v in (x, y, yaw, bearing_rad, range_m)) or range_m <= 0.0:
        return None
    heading = math.atan2(math.sin(yaw + bearing_rad), math.cos(yaw + bearing_rad))
    return (x + range_m * math.cos(heading), y + range_m * math.sin(heading), heading)


def yaw_quaternion(yaw: float) -> Tuple[float, float, float, float]:
    """Return the (x, y, z, w) quaternion of a rotation by yaw about z."""
    return (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0))
