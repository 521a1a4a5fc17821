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
The free-text baseline: the navigation design the package is measured against.

It asks a free-text question, generates up to 50 (search) or 150 (explore) tokens and
searches the lower-cased answer for words: the target's name, then 'left' / 'right' /
'center' and 'near'; 'obstacle' / 'blocked' / 'clear' when exploring. Turns are
±0.5 rad/s, forward 0.3 m/s (0.4 exploring), and 0.3 rad/s rotation while searching.
Reimplemented from the design's description, not copied; plain Python, no ROS.
"""

from dataclasses import dataclass
from typing import Optional

from vlm_nav.nav.policy import Decision, MODES, PolicyConfig
from vlm_nav.perception.vocabulary import (FREE_TEXT_EXPLORE_PROMPT, FREE_TEXT_EXPLORE_TOKENS,
                                           free_text_search_question, FREE_TEXT_SEARCH_TOKENS)


def free_text_prompt(mode: str, target: str):
    """Return the (prompt, max_new_tokens) the baseline uses in this mode."""
    if mode == 'explore':
        return FREE_TEXT_EXPLORE_PROMPT, FREE_TEXT_EXPLORE_TOKENS
    return free_text_search_question(target), FREE_TEXT_SEARCH_TOKENS


def free_text_decision(mode: str, target: str, answer: str) -> Decision:
    """Decide by substring matching, rule for rule as the baseline does."""
    response = answer.lower()
    quoted = f'answer {answer.strip()[:80]!r}'
    if mode == 'explore':
        if 'obstacle' in response or 'blocked' in response:
            angular = -0.5 if 'left' in response else 0.5
            return Decision(0.0, angular, 'avoiding', quoted)
        if 'clear' in response:
            return Decision(0.4, 0.0, 'cruising', quoted)
        return Decision(0.0, 0.0, 'waiting', quoted)
    if target.lower() in response:
        if 'left' in response:
            return Decision(0.0, 0.5, 'turning', quoted)
        if 'right' in response:
            return Decision(0.0, -0.5, 'turning', quoted)
        if 'center' in response:
            if 'near' in response:
                return Decision(0.0, 0.0, 'arrived', quoted, arrived=True)
            return Decision(0.3, 0.0, 'approaching', quoted)
        return Decision(0.0, 0.0, 'waiting', quoted)   # the baseline publishes a zero Twist
    return Decision(0.0, 0.3, 'scanning', quoted)


@dataclass
class Answer:
    """One free-text answer and the stamp of the frame the model saw."""

    stamp_s: float
    answer: str


class FreeTextPolicy:
    """
    The free-text baseline (free_text_decision) behind the NavigationPolicy interface.

    The navigator node runs either policy with the same velocity limiter and
    stale-perception stop. The newest answer's decision holds until the next answer (the
    baseline publishes one Twist per answer); 'arrived' latches, as in NavigationPolicy.
    """

    def __init__(self, config: Optional[PolicyConfig] = None):
        self.config = config or PolicyConfig()   # only speed limits apply (via the limiter)
        self.mode = 'idle'
        self.target = ''
        self._arrived = False

    def reset(self, mode: str, target: str = '') -> None:
        if mode not in MODES:
            raise ValueError(f'unknown mode {mode!r}; one of {MODES}')
        self.mode, self.target, self._arrived = mode, target, False

    @property
    def arrived(self) -> bool:
        return self._arrived

    def prompt(self):
        """Return the (prompt, max_new_tokens) for the current mode and target."""
        return free_text_prompt(self.mode, self.target)

    def decide(self, obs: Optional[Answer], now_s: float) -> Decision:
        if self.mode == 'idle' or obs is None:
            return Decision(0.0, 0.0, 'idle', 'idle' if obs else 'no answer yet')
        if self._arrived:
            return Decision(0.0, 0.0, 'arrived', f'stopped in front of the {self.target}', True)
        # The baseline has no follow mode: follow searches the same way.
        decision = free_text_decision('explore' if self.mode == 'explore' else 'search',
                                      self.target, obs.answer)
        self._arrived = decision.arrived
        return decision
