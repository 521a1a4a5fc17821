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

"""Held-out episodes, the shortest path to where the target can be seen, and SPL."""

import math

import pytest

from vlm_nav.sim import make_layout, World
from vlm_nav.sim.episodes import FIRST_SEED, make_episodes, shortest_path_m, spl


def test_episodes_are_held_out_reproducible_and_reachable():
    first = make_episodes(3)
    assert [e.seed for e in first] == [FIRST_SEED, FIRST_SEED + 1, FIRST_SEED + 2]
    assert all(e.seed >= 3_000_000 for e in first)   # training 0..5999, eval 2 000 000..
    assert first == make_episodes(3)
    for e in first:
        assert math.isfinite(e.shortest_m) and e.shortest_m > 0.0
        straight = math.dist(e.start[:2], e.target_xy) - 1.3
        assert e.shortest_m >= straight - 0.1        # never shorter than the straight line


def test_shortest_path_goes_around_walls():
    # seed 3000000 has a wall at x ~ -0.9 with a gap: crossing it is longer than straight
    with World(make_layout(FIRST_SEED)) as world:
        d = shortest_path_m(world, (2.0, 3.0), (-3.0, 3.0), 0.3)
    assert d > math.dist((2.0, 3.0), (-3.0, 3.0)) - 0.3 + 0.5


def test_shortest_path_ends_where_the_target_can_be_seen():
    """
    Held-out 3 000 045: the red ball is 1.3 m from cells just behind a wall.

    The robot must go round through two openings to see it from; 3 000 000's path is open.
    """
    episodes = make_episodes(46)
    for index, lo, hi in ((45, 5.0, 6.0), (0, 0.0, math.inf)):
        e = episodes[index]
        with World(make_layout(e.seed)) as world:
            behind_wall_allowed = shortest_path_m(world, e.start[:2], e.target_xy, 1.3,
                                                  need_view=False)
        assert lo < e.shortest_m < hi, e
        if index == 45:
            assert behind_wall_allowed < 2.5, behind_wall_allowed
        else:
            assert behind_wall_allowed == pytest.approx(e.shortest_m)


def test_spl():
    assert spl(True, 3.0, 3.0) == 1.0
    assert spl(True, 3.0, 6.0) == 0.5
    assert spl(True, 3.0, 2.0) == 1.0               # odometry shorter than the grid path
    assert spl(False, 3.0, 3.0) == 0.0
