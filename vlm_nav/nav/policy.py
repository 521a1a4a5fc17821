"""Navigation policy: model probabilities -> velocity command, with the reason why.

Plain Python, no ROS: the navigator node feeds it observations and the clock, and
publishes what it returns (after the velocity limiter).
"""

from dataclasses import dataclass, field
import math
from typing import Optional

from vlm_nav.perception import DEFAULT_HFOV_RAD, Observation

MODES = ('idle', 'search', 'explore', 'follow')


@dataclass
class PolicyConfig:
    max_linear: float = 0.3          # m/s
    max_angular: float = 1.0         # rad/s
    turn_gain: float = 2.0           # rad/s per rad of bearing error
    visible_threshold: float = 0.6   # P(visible) to start tracking a target
    lost_threshold: float = 0.4      # ... and to stop tracking it (hysteresis)
    near_threshold: float = 0.6      # P(near) that counts as arrived when centred
    center_threshold: float = 0.6    # P(center) that counts as facing the target
    blocked_threshold: float = 0.5   # P(path clear) below this: don't drive forward
    scan_angular: float = 0.6        # rad/s while scanning for a target
    lost_memory_s: float = 3.0       # turn toward where the target was last seen this long
    relocate_s: float = 4.0          # drive this long to a new spot after a fruitless scan
    explore_linear: float = 0.25     # m/s cruising in explore mode
    follow_deadband_rad: float = 0.12
    creep_linear: float = 0.08       # m/s toward a centred target while the path is blocked
    creep_s: float = 3.0             # ... for this long (the target itself may be what blocks)
    detour_s: float = 2.5            # then drive this long beside the obstacle once clear
    hfov_rad: float = DEFAULT_HFOV_RAD


@dataclass
class Decision:
    linear: float
    angular: float
    phase: str
    reason: str
    arrived: bool = False


@dataclass
class _Memory:
    tracking: bool = False
    last_seen_s: Optional[float] = None
    last_seen_bearing: float = 0.0
    scanned_rad: float = 0.0         # how far we have turned since the scan began
    scan_direction: float = 1.0
    relocate_until: Optional[float] = None
    avoid_direction: float = 1.0
    arrived: bool = False
    last_now: Optional[float] = None
    last_angular: float = 0.0
    seen_headings: list = field(default_factory=list)
    blocked_since: Optional[float] = None   # approaching with the path blocked since
    detour: Optional[str] = None            # 'turning' (away until clear) | 'driving'
    detour_until: Optional[float] = None


class NavigationPolicy:

    def __init__(self, config: Optional[PolicyConfig] = None):
        self.config = config or PolicyConfig()
        self.mode = 'idle'
        self.target = ''
        self._m = _Memory()

    def reset(self, mode: str, target: str = '') -> None:
        if mode not in MODES:
            raise ValueError(f'unknown mode {mode!r}; one of {MODES}')
        self.mode, self.target = mode, target
        self._m = _Memory()

    @property
    def arrived(self) -> bool:
        return self._m.arrived

    def decide(self, obs: Optional[Observation], now_s: float) -> Decision:
        """One decision for the newest (fresh) observation at time now_s."""
        m = self._m
        dt = 0.0 if m.last_now is None else max(0.0, now_s - m.last_now)
        m.last_now = now_s
        # Integrate what we commanded last time: how far the scan has turned.
        m.scanned_rad += abs(m.last_angular) * dt
        if self.mode == 'idle' or obs is None:
            decision = Decision(0.0, 0.0, 'idle', 'idle' if obs else 'no observation yet')
        elif self.mode == 'explore':
            decision = self._explore(obs)
        elif self.mode == 'follow':
            decision = self._follow(obs, now_s)
        else:
            decision = self._search(obs, now_s)
        m.last_angular = decision.angular
        return decision

    # ---- modes --------------------------------------------------------------------------
    def _sees(self, obs: Observation) -> bool:
        c, m = self.config, self._m
        threshold = c.lost_threshold if m.tracking else c.visible_threshold
        m.tracking = obs.visible_prob >= threshold
        return m.tracking

    def _search(self, obs: Observation, now_s: float) -> Decision:
        c, m = self.config, self._m
        if m.arrived:
            return Decision(0.0, 0.0, 'arrived', f'stopped in front of the {self.target}', True)
        if m.detour is not None:
            detour = self._detour(obs, now_s)
            if detour is not None:
                return detour
        if self._sees(obs):
            bearing = obs.expected_bearing(c.hfov_rad)
            m.last_seen_s, m.last_seen_bearing = now_s, bearing
            m.scanned_rad, m.relocate_until = 0.0, None
            p_center = obs.bearing_probs.get('center', 0.0)
            p_near = obs.near_prob()
            where = (f'P(visible)={obs.visible_prob:.2f} bearing {math.degrees(bearing):+.0f}° '
                     f'P(center)={p_center:.2f} P(near)={p_near:.2f}')
            if p_near >= c.near_threshold and p_center >= c.center_threshold:
                m.arrived = True
                return Decision(0.0, 0.0, 'arrived', f'{self.target} centred and near: {where}',
                                True)
            angular = c.turn_gain * bearing
            # Drive only as much as the target is straight ahead; slow down when near.
            linear = c.max_linear * p_center * (1.0 - 0.5 * p_near)
            if obs.path_clear_prob < c.blocked_threshold and linear > 0.0:
                return self._blocked_approach(obs, now_s, linear, angular, where)
            m.blocked_since = None
            phase = 'approaching' if linear > 0.05 else 'turning'
            return Decision(linear, angular, phase, f'{self.target} seen: {where}')
        m.blocked_since = None
        return self._look_for(obs, now_s)

    def _blocked_approach(self, obs: Observation, now_s: float, linear: float,
                          angular: float, where: str) -> Decision:
        """Something is in the way of a seen target: creep (it may be the target), then detour.

        The path-clear answer covers the robot's width up to ~0.8 m ahead, so the target
        itself blocks it before it counts as near; creeping for creep_s finds out.
        """
        c, m = self.config, self._m
        if m.blocked_since is None:
            m.blocked_since = now_s
        if now_s - m.blocked_since < c.creep_s:
            return Decision(min(c.creep_linear, linear), angular, 'creeping',
                            f'{self.target} seen but path blocked '
                            f'(P(clear)={obs.path_clear_prob:.2f}), creeping: {where}')
        # Go around: turn away from the target's side until clear, drive, look again.
        m.blocked_since = None
        m.detour = 'turning'
        m.avoid_direction = -1.0 if m.last_seen_bearing >= 0 else 1.0
        m.detour_until = now_s + 2.0 * math.pi / max(c.scan_angular, 1e-3)
        return Decision(0.0, m.avoid_direction * c.scan_angular, 'detouring',
                        f'path to the {self.target} blocked for {c.creep_s:.0f} s: going around')

    def _detour(self, obs: Observation, now_s: float) -> Optional[Decision]:
        """The detour's next command, or None when it is over (search resumes)."""
        c, m = self.config, self._m
        clear = obs.path_clear_prob >= c.blocked_threshold
        if m.detour == 'turning':
            if not clear and now_s < m.detour_until:
                return Decision(0.0, m.avoid_direction * c.scan_angular, 'detouring',
                                f'turning away from the obstacle (P(clear)='
                                f'{obs.path_clear_prob:.2f})')
            m.detour, m.detour_until = 'driving', now_s + c.detour_s
        if m.detour == 'driving' and clear and now_s < m.detour_until:
            return Decision(c.explore_linear, 0.0, 'detouring',
                            f'driving past the obstacle (P(clear)={obs.path_clear_prob:.2f})')
        m.detour = m.detour_until = None
        # Look back where the target was.
        m.last_seen_s = now_s
        return None

    def _look_for(self, obs: Observation, now_s: float) -> Decision:
        c, m = self.config, self._m
        lost_for = None if m.last_seen_s is None else now_s - m.last_seen_s
        if lost_for is not None and lost_for < c.lost_memory_s:
            direction = 1.0 if m.last_seen_bearing >= 0 else -1.0
            m.scan_direction = direction
            return Decision(0.0, direction * c.scan_angular, 'reacquiring',
                            f'{self.target} lost {lost_for:.1f} s ago; turning '
                            f'{"left" if direction > 0 else "right"} where it was')
        if m.relocate_until is not None:
            if now_s < m.relocate_until:
                return self._cruise(obs, 'relocating',
                                    f'no {self.target} after a full turn; moving on')
            m.relocate_until, m.scanned_rad = None, 0.0
        if m.scanned_rad >= 2.0 * math.pi:
            m.relocate_until = now_s + c.relocate_s
            return self._cruise(obs, 'relocating', f'no {self.target} after a full turn')
        return Decision(0.0, m.scan_direction * c.scan_angular, 'scanning',
                        f'looking for {self.target}: P(visible)={obs.visible_prob:.2f}, '
                        f'scanned {math.degrees(m.scanned_rad):.0f}°')

    def _cruise(self, obs: Observation, phase: str, why: str) -> Decision:
        """Forward while the model says the path is clear, else turn (sticky direction)."""
        c, m = self.config, self._m
        if obs.path_clear_prob >= c.blocked_threshold:
            return Decision(c.explore_linear, 0.0, phase,
                            f'{why}; path clear (P={obs.path_clear_prob:.2f})')
        return Decision(0.0, m.avoid_direction * c.scan_angular, 'avoiding',
                        f'{why}; path blocked (P(clear)={obs.path_clear_prob:.2f}), turning')

    def _explore(self, obs: Observation) -> Decision:
        return self._cruise(obs, 'cruising', 'exploring')

    def _follow(self, obs: Observation, now_s: float) -> Decision:
        c, m = self.config, self._m
        if not self._sees(obs):
            return self._look_for(obs, now_s)
        bearing = obs.expected_bearing(c.hfov_rad)
        m.last_seen_s, m.last_seen_bearing = now_s, bearing
        m.scanned_rad = 0.0
        # Deadband so a target near the centre doesn't make the robot wiggle.
        angular = 0.0 if abs(bearing) < c.follow_deadband_rad else c.turn_gain * bearing
        p_near = obs.near_prob()
        linear = 0.0 if p_near >= c.near_threshold else \
            c.max_linear * obs.bearing_probs.get('center', 0.0)
        phase = 'holding' if linear == 0.0 else 'following'
        return Decision(linear, angular, phase,
                        f'following {self.target}: bearing {math.degrees(bearing):+.0f}° '
                        f'P(near)={p_near:.2f}')
