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

"""Labelled views for training: one image + ground truth per (layout_seed, view_seed)."""

from collections import OrderedDict
import math
from typing import List, Tuple

import numpy as np

from vlm_nav.sim.layout import make_layout
from vlm_nav.sim.world import ObjectTruth, Pose2D, World

# Worlds kept per process; each holds a pybullet client (a few MB).
_CACHE_SIZE = 4
_worlds: 'OrderedDict[Tuple[int, int, float], World]' = OrderedDict()

FACE_OBJECT_PROB = 0.6     # views aimed at an object (the rest: random heading)
CLOSE_UP_PROB = 0.4        # of those, views taken from 0.4-1.6 m of the object


def get_world(layout_seed: int, image_size: int = 96, hfov_deg: float = 60.0) -> World:
    """Return a cached World for the layout seed (LRU, closes the evicted client)."""
    key = (int(layout_seed), int(image_size), float(hfov_deg))
    world = _worlds.pop(key, None)
    if world is None:
        world = World(make_layout(layout_seed), image_size=image_size, hfov_deg=hfov_deg)
    _worlds[key] = world
    while len(_worlds) > _CACHE_SIZE:
        _worlds.popitem(last=False)[1].close()
    return world


def _view_pose(world: World, rng: np.random.Generator) -> Pose2D:
    pose = world.random_free_pose(rng)
    objects = world.objects
    if not objects or rng.random() >= FACE_OBJECT_PROB:
        return pose
    obj = objects[int(rng.integers(len(objects)))]
    x, y = pose.x, pose.y
    if rng.random() < CLOSE_UP_PROB:
        # Close-ups so that 'near' is not rare; fall back to the random position.
        for _ in range(50):
            d = rng.uniform(0.4, 1.6)
            a = rng.uniform(-math.pi, math.pi)
            cx, cy = obj.x + d * math.cos(a), obj.y + d * math.sin(a)
            if not world.collides_at(cx, cy, 0.02):
                x, y = cx, cy
                break
    # Jitter within +-0.45 hfov so the object lands in every third (and sometimes
    # just outside the image).
    jitter = rng.uniform(-0.45, 0.45) * world.hfov_rad
    return Pose2D(x, y, math.atan2(obj.y - y, obj.x - x) + jitter)


def sample_view(layout_seed: int, view_seed: int, image_size: int = 96,
                hfov_deg: float = 60.0) -> Tuple[np.ndarray, List[ObjectTruth], bool]:
    """
    Return the image, per-object truth and path-clear flag for one reproducible view.

    The same (layout_seed, view_seed) always gives the same view. Object
    visibility is occlusion-aware; see World.ground_truth.
    """
    world = get_world(layout_seed, image_size, hfov_deg)
    rng = np.random.default_rng([int(layout_seed), int(view_seed)])
    world.reset_robot(*_view_pose(world, rng))
    image = world.render()
    return image, world.ground_truth(), world.path_clear()
