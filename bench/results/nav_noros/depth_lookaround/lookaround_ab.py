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
Depth alone on ground truth, with and without the look round before planning.

Usage: python lookaround_ab.py fill|plain FIRST_SEED COUNT > rows.jsonl. 'fill' is the
policy as it ships (a scan over part of the circle: look at the headings the map does not
know, line of sight on the map); 'plain' treats the depth scan as a lidar's would be
treated. One JSON row per episode.
"""

import json
import sys
import time

from vlm_nav.nav import policy as nav_policy
from vlm_nav.sim.episodes import make_episodes, oracle_observer, simulate_episode


def main(variant: str, first: int, count: int) -> None:
    if variant == 'plain':
        nav_policy.NavigationPolicy._narrow = lambda self: False
    for episode in make_episodes(count, first_seed=first):
        started = time.time()
        row = simulate_episode(episode, oracle_observer, latency_s=0.02, use_depth=True)
        keep = ('seed', 'target', 'outcome', 'success', 'spl', 'success_1m', 'spl_1m',
                'time_s', 'collisions')
        print(json.dumps(dict({k: row[k] for k in keep}, v=variant,
                              wall=round(time.time() - started, 1))), flush=True)


if __name__ == '__main__':
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
