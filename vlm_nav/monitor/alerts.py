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
Security monitor policy: the per-scenario alert decision. No ROS here.

A scenario is a closed-set question about one frame (yes/no by default) and the answer(s)
that mean "alarm". The model's probability of the alarm answers is the scenario's
confidence on that frame; `AlertPolicy` turns a stream of confidences into alerts:

- debounce: an event starts after `min_consecutive` checks in a row at or above
  `threshold` (one lucky frame doesn't raise an alarm);
- one event, one alert: while the event lasts no further alert is raised;
- the event ends (and the scenario re-arms) after `clear_consecutive` checks in a row
  below `clear_threshold` (hysteresis; defaults to `threshold`);
- cooldown: no two alerts of a scenario closer than `cooldown_s`. An event that starts
  inside the cooldown is held back, and reported once the cooldown has passed if it
  is still going on, so a flapping condition alerts at most once per cooldown.

Times are the stamps of the frames the model saw (seconds), so a replayed bag or a
simulator on its own clock behaves as it would live. If time goes backwards (a bag
looped, a clock reset) the scenario's history is forgotten.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional, Sequence

from vlm_nav.monitor.scenarios import Scenario


@dataclass
class Decision:
    """What one check of one scenario led to."""

    confidence: float
    hit: bool                   # at or above threshold on this frame
    alert: bool = False         # raise an alert now
    held_by_cooldown: bool = False
    event_ended: bool = False
    consecutive_hits: int = 0


@dataclass
class _State:
    hits: int = 0               # checks in a row at or above threshold
    clears: int = 0             # checks in a row below clear_threshold
    active: bool = False        # an event is going on and was reported
    last_alert: Optional[float] = None
    last_time: Optional[float] = None


@dataclass
class AlertPolicy:
    """Per-scenario debounce, event tracking and cooldown (see the module docstring)."""

    scenarios: Sequence[Scenario]
    _states: Dict[str, _State] = field(default_factory=dict)

    def __post_init__(self):
        self._by_id = {s.id: s for s in self.scenarios}
        self._states = {s.id: _State() for s in self.scenarios}

    def in_event(self, scenario_id: str) -> bool:
        return self._states[scenario_id].active

    def update(self, scenario_id: str, confidence: float, time_s: float) -> Decision:
        """Feed the confidence of one successful check on a frame stamped time_s."""
        scenario = self._by_id[scenario_id]
        state = self._states[scenario_id]
        if state.last_time is not None and time_s < state.last_time:
            state = self._states[scenario_id] = _State()     # time went backwards
        state.last_time = time_s
        hit = confidence >= scenario.threshold
        clear = confidence < scenario.clear_threshold
        state.hits = state.hits + 1 if hit else 0
        state.clears = state.clears + 1 if clear else 0
        decision = Decision(confidence=confidence, hit=hit, consecutive_hits=state.hits)
        if state.active and state.clears >= scenario.clear_consecutive:
            state.active = False
            decision.event_ended = True
        if not state.active and state.hits >= scenario.min_consecutive:
            if (state.last_alert is not None
                    and time_s - state.last_alert < scenario.cooldown_s):
                decision.held_by_cooldown = True
            else:
                state.active = True
                state.last_alert = time_s
                decision.alert = True
        return decision
