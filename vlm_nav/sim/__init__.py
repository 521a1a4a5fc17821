"""Built-in indoor simulator: seeded layouts, a pybullet-rendered diff-drive robot.

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
