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

"""A planar lidar in a box-shaped room with round posts, for the scan-frame tests."""

import numpy as np


def raycast(x, y, directions, room, posts, range_max=8.0):
    """
    Return the range from (x, y) along each world direction to the room's walls or a post.

    room: (x_min, x_max, y_min, y_max); posts: (x, y, radius) each; inf beyond range_max.
    """
    dx, dy = np.cos(directions), np.sin(directions)
    hits = np.full(len(directions), np.inf)
    with np.errstate(divide='ignore', invalid='ignore'):
        for t in ((room[0] - x) / dx, (room[1] - x) / dx,
                  (room[2] - y) / dy, (room[3] - y) / dy):
            hits = np.where((t > 0.0) & (t < hits), t, hits)
        for cx, cy, radius in posts:
            along = (cx - x) * dx + (cy - y) * dy
            t = along - np.sqrt(radius ** 2 - ((cx - x) ** 2 + (cy - y) ** 2 - along ** 2))
            hits = np.where(np.isfinite(t) & (t > 0.0) & (t < hits), t, hits)
    return np.where(hits <= range_max, hits, np.inf)
