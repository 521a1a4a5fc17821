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
What RViz and Foxglove show of the navigator: its memory and its map of the scan.

Message building only, no node: the navigator publishes what these return on
vlm_nav/markers (visualization_msgs/MarkerArray) and vlm_nav/scan_map
(nav_msgs/OccupancyGrid), both in the odometry frame, as nav/debug_view.py draws the
camera frame with the answers for vlm_nav/debug_image.
"""

import math
from typing import Optional, Tuple, Union

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point
from nav_msgs.msg import OccupancyGrid
import numpy as np
from visualization_msgs.msg import Marker, MarkerArray

from vlm_nav.nav.free_text import Answer
from vlm_nav.nav.policy import NavigationPolicy
from vlm_nav.nav.scan_map import ScanMap
from vlm_nav.perception.vocabulary import Observation

Rgba = Tuple[float, float, float, float]

_PATH = (0.1, 0.1, 0.1, 0.8)
_CLEAR, _BLOCKED = (0.1, 0.8, 0.1, 0.8), (0.9, 0.1, 0.1, 0.8)
_BEARING = (1.0, 0.8, 0.0, 0.9)
_SEEN, _LABEL = (0.9, 0.1, 0.9, 0.8), (1.0, 1.0, 1.0, 1.0)
_LOOKED, _NOT_LOOKED = (0.1, 0.8, 0.1, 0.9), (1.0, 0.5, 0.0, 0.9)
_PLAN = (0.2, 0.4, 1.0, 0.9)

# P(visible) from which the target's expected bearing is drawn as an arrow
BEARING_MIN_VISIBLE = 0.4


def _marker(frame_id: str, stamp: Time, ident: int, kind: int, ns: str,
            rgba: Rgba) -> Marker:
    m = Marker(ns=ns, id=ident, type=kind, action=Marker.ADD)
    m.header.frame_id, m.header.stamp = frame_id, stamp
    m.pose.orientation.w = 1.0
    m.color.r, m.color.g, m.color.b, m.color.a = rgba
    return m


def policy_markers(policy: Optional[NavigationPolicy],
                   observation: Optional[Union[Observation, Answer]], frame_id: str,
                   stamp: Time, now_s: float) -> MarkerArray:
    """
    Return the policy's memory as markers in frame_id (the odometry frame).

    Drawn: the path, where the target was seen, the headings looked at from here (green
    clear, red blocked) and the current bearing; with a scan map also what the camera has
    looked at of it and the planned path. The array starts with DELETEALL, so each
    replaces the last; without a policy (the free-text baseline keeps no memory) that is
    all it holds. now_s: the clock, in the time of the policy's memory, for the age of the
    target's sighting.
    """
    markers = MarkerArray()
    clear_all = Marker(action=Marker.DELETEALL)
    clear_all.header.frame_id, clear_all.header.stamp = frame_id, stamp
    markers.markers.append(clear_all)
    if policy is None:
        return markers

    def marker(ident: int, kind: int, ns: str, rgba: Rgba) -> Marker:
        return _marker(frame_id, stamp, ident, kind, ns, rgba)

    path = marker(0, Marker.LINE_STRIP, 'path', _PATH)
    path.scale.x = 0.03
    path.points = [Point(x=float(x), y=float(y)) for x, y in policy.visited]
    if len(path.points) >= 2:
        markers.markers.append(path)
    pose = policy.pose
    if pose is not None:
        x, y, yaw = pose
        for i, (heading, clear) in enumerate(policy.headings_here()):
            ray = marker(10 + i, Marker.LINE_LIST, 'headings looked at',
                         _CLEAR if clear else _BLOCKED)
            ray.scale.x = 0.02
            ray.points = [Point(x=x, y=y), Point(x=x + 0.8 * math.cos(heading),
                                                 y=y + 0.8 * math.sin(heading))]
            markers.markers.append(ray)
        if isinstance(observation, Observation) and policy.target and \
                observation.visible_prob >= BEARING_MIN_VISIBLE:
            bearing = yaw + observation.expected_bearing(policy.config.hfov_rad)
            arrow = marker(1, Marker.ARROW, 'bearing', _BEARING)
            arrow.scale.x, arrow.scale.y, arrow.scale.z = 0.04, 0.08, 0.1
            arrow.points = [Point(x=x, y=y), Point(x=x + 1.2 * math.cos(bearing),
                                                   y=y + 1.2 * math.sin(bearing))]
            markers.markers.append(arrow)
    seen = policy.target_memory
    if seen is not None:
        age = now_s - seen.seen_s
        spot = marker(2, Marker.SPHERE, 'target seen', _SEEN)
        spot.pose.position = Point(x=seen.x, y=seen.y, z=0.2)
        spot.scale.x = spot.scale.y = spot.scale.z = 0.3
        label = marker(3, Marker.TEXT_VIEW_FACING, 'target seen', _LABEL)
        label.pose.position = Point(x=seen.x, y=seen.y, z=0.6)
        label.scale.z = 0.2
        label.text = f'{policy.target} (seen {age:.0f} s ago)'
        markers.markers += [spot, label]
    smap = policy.scan_map
    if smap is not None and smap.origin is not None:
        # With a scan: what the camera has looked at (green) or not yet (orange) of
        # what the scan shows, and the planned way to the next viewpoint.
        for ident, (name, cells, rgba) in enumerate((
                ('looked at', smap.occupied & smap.looked, _LOOKED),
                ('not looked at', smap.occupied & ~smap.looked & ~smap.dropped,
                 _NOT_LOOKED))):
            points = marker(20 + ident, Marker.POINTS, name, rgba)
            points.scale.x = points.scale.y = smap.resolution
            ci, cj = np.nonzero(cells)
            cx, cy = smap.centre(ci, cj)
            points.points = [Point(x=float(a), y=float(b)) for a, b in zip(cx, cy)]
            if points.points:
                markers.markers.append(points)
        plan = policy.planned_path
        if plan:
            line = marker(30, Marker.LINE_STRIP, 'plan', _PLAN)
            line.scale.x = 0.04
            line.points = [Point(x=float(a), y=float(b)) for a, b in plan]
            markers.markers.append(line)
    return markers


def scan_map_grid(smap: Optional[ScanMap], frame_id: str,
                  stamp: Time) -> Optional[OccupancyGrid]:
    """
    Return the policy's map of the scan as an OccupancyGrid in frame_id (odometry).

    Cells: 100 occupied, 0 free, -1 unknown. None before the map has an origin.
    """
    if smap is None or smap.origin is None:
        return None
    grid = OccupancyGrid()
    grid.header.frame_id = frame_id
    grid.header.stamp = stamp
    grid.info.resolution = float(smap.resolution)
    grid.info.width = grid.info.height = smap.n
    grid.info.origin.position.x, grid.info.origin.position.y = map(float, smap.origin)
    grid.info.origin.orientation.w = 1.0
    cells = np.full(smap.logodds.shape, -1, dtype=np.int8)
    cells[smap.free] = 0
    cells[smap.occupied] = 100
    grid.data = cells.T.ravel().tolist()     # row-major, x fastest: [j, i] order
    return grid
