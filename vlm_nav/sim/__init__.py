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
Built-in indoor simulator: seeded layouts, a pybullet-rendered diff-drive robot.

No ROS imports here; vlm_nav.sim_node wraps it in a node.
"""

from vlm_nav.sim.dataset import get_world, sample_view
from vlm_nav.sim.layout import Layout, make_layout, OBJECT_LABELS, ObjectSpec, Rect
from vlm_nav.sim.plot import save_top_down, top_down_figure
from vlm_nav.sim.world import (
    bearing_label, describe, MIN_VISIBLE_FRACTION, min_visible_pixels, NEAR_DISTANCE_M,
    ObjectTruth, Pose2D, World, wrap_angle)

__all__ = [
    'Layout', 'make_layout', 'OBJECT_LABELS', 'ObjectSpec', 'Rect',
    'World', 'ObjectTruth', 'Pose2D', 'NEAR_DISTANCE_M', 'MIN_VISIBLE_FRACTION',
    'min_visible_pixels', 'bearing_label', 'describe', 'wrap_angle',
    'sample_view', 'get_world', 'save_top_down', 'top_down_figure',
]
