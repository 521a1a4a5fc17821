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
Is an observation fit to drive on? Plain Python, no ROS.

The navigator acts only on observations that pass; anything else counts as no
perception, so the stale-perception stop applies. A model that emits NaN (fp16
overflow, corrupt weights) or a camera with a clock in the future must never move
the robot.
"""

import math
from typing import Dict, Sequence

from vlm_nav.perception.vocabulary import BEARINGS, DISTANCES, Observation

# Probabilities arrive as float32 softmax outputs: allow their rounding, nothing more.
PROB_TOLERANCE = 1e-3


def _distribution_problem(name: str, probs: Dict[str, float], labels: Sequence[str]) -> str:
    unknown = sorted(set(probs) - set(labels))
    if unknown:
        return f'{name} has unknown labels {unknown} (expected {list(labels)})'
    for label, p in probs.items():
        if not (math.isfinite(p) and -PROB_TOLERANCE <= p <= 1.0 + PROB_TOLERANCE):
            return f'{name}[{label}] = {p!r} is not a probability'
    if probs and abs(sum(probs.values()) - 1.0) > 0.01:
        return f'{name} sums to {sum(probs.values()):.3f}, not 1'
    return ''


def observation_problem(obs: Observation, now_s: float, future_tolerance_s: float) -> str:
    """
    Return '' when obs can be acted on at time now_s, else why not (for logs and counters).

    :param future_tolerance_s: how far a frame stamp may lie ahead of now_s (clock skew
        between the camera's and the navigator's machine). A stamp further ahead would
        make perception look fresh for that long, so it is refused.
    """
    for name, p in (('P(visible)', obs.visible_prob), ('P(path clear)', obs.path_clear_prob)):
        if not (math.isfinite(p) and -PROB_TOLERANCE <= p <= 1.0 + PROB_TOLERANCE):
            return f'{name} = {p!r} is not a probability'
    problem = (_distribution_problem('bearing', obs.bearing_probs, BEARINGS) or
               _distribution_problem('distance', obs.distance_probs, DISTANCES))
    if problem:
        return problem
    if not math.isfinite(obs.stamp_s):
        return f'frame stamp {obs.stamp_s!r} is not a time'
    if not math.isfinite(now_s) or obs.stamp_s > now_s + future_tolerance_s:
        return (f'frame stamp is {obs.stamp_s - now_s:.3f} s in the future '
                f'(tolerance {future_tolerance_s} s): camera clock ahead?')
    return ''
