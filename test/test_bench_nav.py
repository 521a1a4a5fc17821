"""`vlm-nav bench nav`: episode generation, shortest paths, SPL and the oracle as plain Python.

The closed-loop regression check with a floor on success rate is not here yet: the scored
navigator still fails some episodes on obstacles (issue 6); the demo test closes the loop.
"""

import math

from vlm_nav.bench_nav import FIRST_SEED, make_episodes, shortest_path_m, spl
from vlm_nav.oracle_node import oracle_observation


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
    from vlm_nav.sim import make_layout, World
    # seed 3000000 has a wall at x ~ -0.9 with a gap: crossing it is longer than straight
    with World(make_layout(FIRST_SEED)) as world:
        d = shortest_path_m(world, (2.0, 3.0), (-3.0, 3.0), 0.3)
    assert d > math.dist((2.0, 3.0), (-3.0, 3.0)) - 0.3 + 0.5


def test_spl():
    assert spl(True, 3.0, 3.0) == 1.0
    assert spl(True, 3.0, 6.0) == 0.5
    assert spl(True, 3.0, 2.0) == 1.0               # odometry shorter than the grid path
    assert spl(False, 3.0, 3.0) == 0.0


def test_oracle_answers_from_ground_truth():
    truth = {'stamp': 12.25, 'path_clear': False, 'objects': [
        {'label': 'red ball', 'visible': True, 'image_bearing': 'left', 'distance': 'near',
         'distance_m': 0.9},
        {'label': 'blue box', 'visible': False, 'image_bearing': 'center', 'distance': 'far',
         'distance_m': 3.0}]}
    seen = oracle_observation(truth, 'red ball')
    assert seen.visible_prob == 1.0 and list(seen.bearing_probs) == [1.0, 0.0, 0.0]
    assert list(seen.distance_probs) == [1.0, 0.0] and seen.path_clear_prob == 0.0
    assert seen.header.stamp.sec == 12 and seen.header.stamp.nanosec == 250_000_000
    assert oracle_observation(truth, 'blue box').visible_prob == 0.0
    assert oracle_observation(truth, 'green cone').visible_prob == 0.0
