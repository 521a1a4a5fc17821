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
Exploring with a scan over the camera's view only (a depth camera's virtual scan).

The map's unknown headings around the robot, line of sight on the map, the policy
looking round before it plans, and the no-ROS loop finding targets with depth alone.
"""

import math

import numpy as np
from test_map_forgetting import ROOM, scan_at

from vlm_nav.nav.policy import NavigationPolicy, PolicyConfig
from vlm_nav.nav.scan_map import ScanMap
from vlm_nav.perception.vocabulary import Observation
from vlm_nav.sim.episodes import make_episodes, oracle_observer, simulate_episode

NOTHING = Observation('red ball', 0.0, 0.0, {'left': 1 / 3, 'center': 1 / 3, 'right': 1 / 3},
                      {'near': 0.5, 'far': 0.5}, 1.0)


def test_unknown_headings_are_those_a_narrow_scan_has_not_covered():
    smap = ScanMap()
    pose = (2.0, 2.0, 0.0)
    for _ in range(2):                       # a cell is free from its second pass on
        smap.integrate(pose, scan_at(pose, ROOM, beams=64, fov=math.radians(60.0)))
    unknown = smap.unknown_bearings(pose)
    assert len(unknown) >= 18
    assert np.all(np.abs(unknown) > math.radians(20.0))     # ahead is known
    assert np.any(np.abs(unknown) > math.radians(170.0))    # behind is not
    for k in range(1, 12):
        turned = (2.0, 2.0, k * math.pi / 6.0)
        for _ in range(2):
            smap.integrate(turned, scan_at(turned, ROOM, beams=64, fov=math.radians(60.0)))
    assert len(smap.unknown_bearings(pose)) == 0


def test_line_of_sight_on_the_map_stops_at_walls():
    smap = ScanMap()
    for k in range(12):
        turned = (2.0, 2.0, k * math.pi / 6.0)
        smap.integrate(turned, scan_at(turned, ROOM, beams=64, fov=math.radians(60.0)))
    # the far side of the dividing wall (x = 4), as if seen through the doorway before
    i, j = smap.cell(np.array([4.6, 4.6]), np.array([0.6, 2.0]))
    smap.logodds[i, j] = 3.0
    sight = smap._in_sight((2.0, 2.0, 0.0), i, j)
    assert not sight[0]          # behind the wall piece (y 0..1.5)
    assert sight[1]              # through the doorway


def test_policy_with_a_narrow_scan_looks_round_before_it_plans():
    """A fresh map from a 60 deg scan: the policy turns in place over unknown headings."""
    policy = NavigationPolicy(PolicyConfig())
    policy.reset('search', 'red ball')
    pose, t, turned = (2.0, 2.0, 0.0), 0.0, 0.0
    for _ in range(80):
        d = policy.decide(NOTHING, t, pose, scan_at(pose, ROOM, beams=64,
                                                    fov=math.radians(60.0)))
        assert d.linear == 0.0 and d.phase == 'looking', d
        if 'the map does not know' not in d.reason:
            break
        pose = (pose[0], pose[1], pose[2] + d.angular * 0.1)
        turned += abs(d.angular) * 0.1
        t += 0.1
    # Turned over all but the headings in view at the start (which the next sweep covers).
    assert turned > math.radians(250.0), turned
    assert len(policy.scan_map.unknown_bearings(pose)) <= 4, \
        policy.scan_map.unknown_bearings(pose)


def test_policy_with_depth_alone_finds_targets_on_ground_truth_answers():
    """No ROS, no lidar: the depth camera's virtual scan maps; three development episodes."""
    for episode in make_episodes(3, first_seed=5_000_030):
        policy = NavigationPolicy()
        row = simulate_episode(episode, oracle_observer, latency_s=0.02, use_depth=True,
                               policy=policy)
        assert row['success'] and row['collisions'] == 0, (episode, row['outcome'])
        assert policy.scan_map is not None and policy.scan_map.scans > 10
