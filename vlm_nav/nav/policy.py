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
Navigation policy: model probabilities (+ odometry) -> velocity command, with the reason.

Plain Python, no ROS: the navigator node feeds it observations, the clock and the robot's
pose from odometry, and publishes what it returns (after the velocity limiter). Without a
pose it dead-reckons one from its own commands, so the same memory works either way.

Memory (all in the odometry frame):
- where the target was last seen (a world heading and a rough position: 'near' = 0.8 m,
  otherwise 2 m along the seen bearing), so a detour or a lost target turns back to it;
- which headings were looked at from the current spot, and which of them had a clear
  path ahead (a polar map of the spot, from the model's "is the path ahead clear?");
- the places visited (every 0.3 m), so relocating and exploring go where it has not been.

Search: approach a seen target with proportional turning; when the path ahead is blocked
creep only while the travel since the last clear view stays inside what that view showed
clear (the target itself blocks the path just before it counts as near), then go round:
turn to one side until the path is clear, a little further, drive detour_m, turn back to
where the target was; repeated detours keep the same side (a bug-style walk round the
obstacle). Not seen: turn to the remembered target; gone when faced twice from one spot
(a far target seen only at the magnifying image edges, or one peeking out beside something)
drive that way approach_m; else scan the spot, then move to the least visited clear
heading, walking along walls (a walk that comes back where it began went round a lone
object: leave it), and scan again. Explore: the same scan / move loop without a target.
Follow: keep the target centred at 'near' with hysteresis on distance and bearing.

With a range scan (a 2-D lidar; decide's scan argument, odometry needed) the path ahead is
the scan's (a corridor the robot's width, clear_lookahead_m long) instead of the model's
answer, and exploring follows a map of it (nav/scan_map.py): turn to what the camera has
not looked at yet, else plan the shortest path to a viewpoint of the nearest of it.
"""

from dataclasses import dataclass, field, fields
import math
from typing import Dict, List, Optional, Tuple

import numpy as np

from vlm_nav.nav.scan_map import lookahead_point, Scan, ScanMap
from vlm_nav.perception.vocabulary import DEFAULT_HFOV_RAD, Observation

MODES = ('idle', 'search', 'explore', 'follow')

Pose = Tuple[float, float, float]        # x, y, yaw in the odometry frame


def wrap(angle: float) -> float:
    """Wrap an angle to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi


def _parameter(default: float, name: str, low: float, high: float, description: str):
    """Make a PolicyConfig field: navigator_node's parameter `name`, in [low, high]."""
    return field(default=default, metadata={'parameter': name, 'range': (low, high),
                                            'description': description})


@dataclass
class PolicyConfig:
    """The policy's settings; those made with _parameter are navigator_node parameters."""

    max_linear: float = _parameter(0.3, 'max_linear_speed', 0.0, 2.0,
                                   'fastest forward speed, m/s')
    max_angular: float = _parameter(1.0, 'max_angular_speed', 0.0, 5.0, 'fastest turn, rad/s')
    turn_gain: float = _parameter(2.0, 'turn_gain', 0.0, 10.0,
                                  'rad/s per rad of bearing error')
    visible_threshold: float = _parameter(0.6, 'visible_threshold', 0.0, 1.0,
                                          'P(visible) to start tracking a target')
    lost_threshold: float = _parameter(0.4, 'lost_threshold', 0.0, 1.0,
                                       'P(visible) below which a tracked target is lost '
                                       '(hysteresis)')
    near_threshold: float = _parameter(0.6, 'near_threshold', 0.0, 1.0,
                                       'P(near) that counts as arrived when centred')
    center_threshold: float = _parameter(0.6, 'center_threshold', 0.0, 1.0,
                                         'P(center) that counts as facing the target')
    blocked_threshold: float = _parameter(0.5, 'blocked_threshold', 0.0, 1.0,
                                          "P(path clear) below this: don't drive forward")
    scan_angular: float = _parameter(0.8, 'scan_angular_speed', 0.0, 5.0,
                                     'rad/s while scanning or turning in place')
    lost_memory_s: float = _parameter(3.0, 'lost_memory_s', 0.0, 60.0,
                                      'a target lost this recently (s): turn to where it was')
    target_memory_s: float = 30.0    # a detour turns back to a target seen this recently
    scan_spacing_m: float = 2.5      # scan all round again after this much travel
    relocate_s: float = _parameter(15.0, 'relocate_s', 0.0, 60.0,
                                   'scan all round again after this long (s), or after '
                                   'scan_spacing_m of travel')
    wall_probe_m: float = 0.7        # along a wall: turn toward it after this much travel
    wall_probe_rad: float = 1.2      # ... this far; still clear = a corner or an opening
    loop_m: float = 2.0              # along a wall back within spot_radius_m of where it was
    #                                  this much travel ago: it went round a lone object
    vanish_repeats: int = 2          # seen, faced and gone this often from one spot toward
    #                                  one heading: it is there but too small to see when
    #                                  centred (far), or hidden by what is in front ...
    approach_m: float = 1.5          # ... so drive this far that way instead of turning on
    explore_linear: float = _parameter(0.25, 'explore_linear_speed', 0.0, 2.0,
                                       'm/s while relocating, exploring and detouring')
    follow_deadband_rad: float = 0.12  # follow: start turning beyond this bearing
    follow_release: float = 0.35     # follow: drive again when P(near) drops below this
    creep_linear: float = 0.08       # m/s toward a centred target while the path is blocked
    creep_m: float = 0.4             # travel since the last clear view allowed while creeping
    detour_m: float = 0.6            # drive this far beside an obstacle before looking back
    detour_margin_rad: float = 0.3   # turn this much past the first clear heading
    detour_sweep_rad: float = 0.8    # look for a clear heading this far to each side first,
    #                                  then twice as far, ... (the smallest way round wins)
    detour_memory_s: float = 20.0    # keep going round on the same side for this long
    stall_s: float = 2.0             # driven forward this long (odometry) with less than
    stall_m: float = 0.05            # this much progress: blocked, whatever the camera says
    stall_hold_s: float = 1.5        # ... and the path counts as blocked for this long
    heading_bins: int = 24           # resolution of the per-spot heading memory
    spot_radius_m: float = 0.5       # headings looked at within this distance count as here
    hfov_rad: float = DEFAULT_HFOV_RAD
    # With a range scan:
    robot_radius: float = _parameter(0.2, 'robot_radius', 0.05, 2.0,
                                     'robot radius, m: with a scan the corridor ahead is this '
                                     'plus clear_margin_m wide each side')
    clear_margin_m: float = 0.05     # ... each side
    clear_lookahead_m: float = _parameter(0.8, 'clear_lookahead_m', 0.1, 5.0,
                                          'm of corridor that must be free to drive on (with '
                                          'a scan)')
    view_range_m: float = _parameter(3.5, 'view_range_m', 0.5, 30.0,
                                     'with a scan, what was in view this near counts as '
                                     'looked at, m')
    replan_s: float = 2.0            # exploring: plan a new path this often
    narrow_scan_rad: float = math.radians(180.0)   # a scan narrower than this covers part
    #                                  of the circle (a depth camera's): before planning,
    fill_radius_m: float = 2.0       # look at the headings the map does not know this near
    arrive_range_m: float = 0.75     # with such a scan: arrive only with the nearest return
    arrive_cone_rad: float = 0.08    # this far either side of straight ahead this near


@dataclass(frozen=True)
class PolicyParameter:
    """A navigator_node parameter that sets a PolicyConfig field."""

    field_name: str
    default: float
    low: float
    high: float
    description: str      # for the parameter's descriptor (`ros2 param describe`)


# navigator_node parameter (config/vlm_nav.yaml) -> what it sets, its default and range
POLICY_PARAMETERS: Dict[str, PolicyParameter] = {
    f.metadata['parameter']: PolicyParameter(
        f.name, f.default, *f.metadata['range'],
        f'policy: {f.name}; {f.metadata["description"]}')
    for f in fields(PolicyConfig) if 'parameter' in f.metadata}
# navigator_node parameter -> PolicyConfig field
POLICY_PARAMS = {name: parameter.field_name for name, parameter in POLICY_PARAMETERS.items()}


def config_from_parameters(values: dict) -> PolicyConfig:
    """
    Build a PolicyConfig from navigator_node's parameters (hfov_deg and POLICY_PARAMS).

    The other fields keep their defaults. The node and the no-ROS benchmark read the same
    YAML this way.
    """
    config = PolicyConfig()
    if 'hfov_deg' in values:
        config.hfov_rad = math.radians(float(values['hfov_deg']))
    for name, field_name in POLICY_PARAMS.items():
        if name in values:
            setattr(config, field_name, float(values[name]))
    return config


@dataclass
class Decision:
    linear: float
    angular: float
    phase: str
    reason: str
    arrived: bool = False


@dataclass
class TargetMemory:
    seen_s: float
    heading: float                   # world heading from the robot when last seen
    x: float                         # rough world position (distance guessed from near/far)
    y: float


@dataclass
class _Spot:
    """What was seen from one place: which heading bins were in view, which were clear."""

    x: float
    y: float
    looked: set = field(default_factory=set)
    clear: dict = field(default_factory=dict)     # bin -> path clear when facing it


@dataclass
class _Detour:
    side: float                      # turning this way now: +1 = left, -1 = right
    amplitude: float                 # ... until this far from the start heading, then swap
    stage: str = 'turn'              # turn -> margin -> drive -> face
    offset: float = 0.0              # signed turn since the start heading
    flips: int = 0
    margin_from: float = 0.0         # yaw where the path turned clear
    drive_from: Tuple[float, float] = (0.0, 0.0)


@dataclass
class _Memory:
    tracking: bool = False
    target: Optional[TargetMemory] = None
    arrived: bool = False
    last_now: Optional[float] = None
    last_cmd: Tuple[float, float] = (0.0, 0.0)
    pose: Optional[Pose] = None
    spot: Optional[_Spot] = None
    visited: List[Tuple[float, float]] = field(default_factory=list)
    last_clear: Optional[Pose] = None          # pose of the newest clear view
    detour: Optional[_Detour] = None
    side: float = 0.0                          # side of the recent detours (0 = none)
    side_until: float = 0.0
    clear_run_from: Optional[Tuple[float, float]] = None
    scan_direction: float = 1.0
    relocate: Optional[dict] = None            # the walk between scans
    odometer: float = 0.0                      # path length driven
    last_scan_odometer: Optional[float] = None
    last_scan_s: float = 0.0
    reacquire_done: bool = False               # faced the remembered target and it wasn't there
    vanished: List[Tuple[float, float, float]] = field(default_factory=list)  # (x, y, heading)
    approach: Optional[Tuple[float, float]] = None   # (odometer at start, heading)
    follow_holding: bool = False
    follow_turning: bool = False
    on_odometry: bool = False                  # odometry has arrived (poses in its frame)
    push_from: Optional[Tuple[float, float, float]] = None   # (time, x, y) driving began
    stalled_until: float = -math.inf           # odometry says stuck: blocked until then
    stalls: int = 0
    scan: Optional[Scan] = None                # the newest range scan (None: camera only)
    scan_map: Optional[ScanMap] = None         # ... and the map built from them
    views: List[Tuple[float, Pose, Scan]] = field(default_factory=list)  # (time, pose, scan)
    viewed_stamp: Optional[float] = None       # the observation last marked on the map
    path: Optional[List[Tuple[float, float]]] = None   # exploring: where to, on the map
    path_s: float = -math.inf                  # ... planned then
    goal: Optional[Tuple[int, int]] = None     # ... the map cell it is for
    blocks: List[float] = field(default_factory=list)   # ... times the scan blocked it


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

    @property
    def pose(self) -> Optional[Pose]:
        """Return the pose the policy used last (odometry, or its own dead reckoning)."""
        return self._m.pose

    @property
    def target_memory(self) -> Optional[TargetMemory]:
        return self._m.target

    @property
    def visited(self) -> List[Tuple[float, float]]:
        """Return the places visited, one every 0.3 m, in the odometry frame."""
        return list(self._m.visited)

    def headings_here(self) -> List[Tuple[float, bool]]:
        """Return (world heading, path clear) of the headings faced from the current spot."""
        spot = self._m.spot
        if spot is None:
            return []
        return [(self._bin_heading(i), clear) for i, clear in sorted(spot.clear.items())]

    def decide(self, obs: Optional[Observation], now_s: float,
               pose: Optional[Pose] = None, scan: Optional[Scan] = None) -> Decision:
        """
        Decide once for the newest (fresh) observation at time now_s.

        pose: the robot's (x, y, yaw) from odometry; None = dead-reckon from the commands.
        scan: the newest (fresh) range scan in the robot's frame, used with odometry only.
        """
        m = self._m
        dt = 0.0 if m.last_now is None else now_s - m.last_now
        dt = min(1.0, dt) if math.isfinite(dt) and dt > 0.0 else 0.0
        m.last_now = now_s
        self._update_pose(pose, dt)
        self._check_stall(now_s)
        self._update_map(scan if pose is not None else None, obs, now_s)
        if self.mode == 'idle' or obs is None:
            decision = Decision(0.0, 0.0, 'idle', 'idle' if obs else 'no observation yet')
        else:
            self._remember_view(obs)
            if self.mode == 'explore':
                decision = self._look_around(obs, now_s, 'exploring')
            elif self.mode == 'follow':
                decision = self._follow(obs, now_s)
            else:
                decision = self._search(obs, now_s)
        if not (math.isfinite(decision.linear) and math.isfinite(decision.angular)):
            # Only observations the node's check refuses get here (an infinite probability);
            # a NaN command would also poison the dead-reckoned pose for every later step.
            decision = Decision(0.0, 0.0, 'idle', f'stopped: no finite command from '
                                f'{decision.phase} ({decision.reason})')
        m.last_cmd = (decision.linear, decision.angular)
        return decision

    # ---- memory -------------------------------------------------------------------------
    def _update_pose(self, pose: Optional[Pose], dt: float) -> None:
        m = self._m
        previous = m.pose
        if pose is not None and not m.on_odometry:
            # The first odometry after dead-reckoned poses is another frame: places
            # remembered in the old one mean nothing there, and the jump is no driving.
            m.on_odometry = True
            previous = None
            m.visited, m.spot, m.last_clear, m.clear_run_from = [], None, None, None
        if pose is not None:
            m.pose = (float(pose[0]), float(pose[1]), float(pose[2]))
        elif previous is None:
            m.pose = (0.0, 0.0, 0.0)
        else:
            x, y, yaw = previous
            v, w = m.last_cmd
            m.pose = (x + v * dt * math.cos(yaw), y + v * dt * math.sin(yaw),
                      wrap(yaw + w * dt))
        if previous is not None and m.detour is not None:
            m.detour.offset += wrap(m.pose[2] - previous[2])
        x, y, _ = m.pose
        if previous is not None:
            m.odometer += math.hypot(x - previous[0], y - previous[1])
        if not m.visited or math.hypot(x - m.visited[-1][0], y - m.visited[-1][1]) > 0.3:
            m.visited.append((x, y))
        if m.spot is None or math.hypot(x - m.spot.x, y - m.spot.y) > self.config.spot_radius_m:
            m.spot = _Spot(x, y)

    def _update_map(self, scan: Optional[Scan], obs: Optional[Observation],
                    now_s: float) -> None:
        """
        Add the scan to the map; mark what the newest answer's frame showed as looked at.

        What the frame showed comes from the pose and scan when that frame was taken: the
        answer comes later.
        """
        c, m = self.config, self._m
        m.scan = scan
        if scan is None:
            return
        if m.scan_map is None:
            m.scan_map = ScanMap(robot_radius=c.robot_radius, hfov_rad=c.hfov_rad,
                                 view_range_m=c.view_range_m)
        if not m.views or m.views[-1][2] is not scan:
            pose = scan.pose or m.pose
            m.scan_map.integrate(pose, scan)
            m.views.append((now_s, pose, scan))
            del m.views[:-40]
        if obs is None or obs.stamp_s == m.viewed_stamp:
            return
        m.viewed_stamp = obs.stamp_s
        _, pose, shot = min(m.views, key=lambda v: abs(v[0] - obs.stamp_s))
        m.scan_map.mark_viewed(pose, shot)

    @property
    def scan_map(self) -> Optional[ScanMap]:
        """Return the map from the range scans (None without them)."""
        return self._m.scan_map

    @property
    def planned_path(self) -> Optional[List[Tuple[float, float]]]:
        """Return the path to the next viewpoint (odom frame) when exploring with a scan."""
        return list(self._m.path) if self._m.path else None

    def _check_stall(self, now_s: float) -> None:
        """
        Mark the robot stalled when commanded forward for stall_s and odometry barely moved.

        Something the camera doesn't show (an object beside the wheels, a corner below the
        view) holds the robot then. Only with odometry: dead-reckoned poses always move as
        commanded.
        """
        c, m = self.config, self._m
        if not m.on_odometry or m.last_cmd[0] <= 0.02:
            m.push_from = None
            return
        x, y, _ = m.pose
        if m.push_from is None or math.hypot(x - m.push_from[1], y - m.push_from[2]) > c.stall_m:
            m.push_from = (now_s, x, y)          # (re)start: moving, or just began
        elif now_s - m.push_from[0] > c.stall_s:
            m.stalled_until, m.stalls = now_s + c.stall_hold_s, m.stalls + 1
            m.push_from = None

    @property
    def stalls(self) -> int:
        """Return how often odometry showed the robot stuck while driving forward."""
        return self._m.stalls

    def _bin(self, heading: float) -> int:
        n = self.config.heading_bins
        return int(round(wrap(heading) / (2.0 * math.pi) * n)) % n

    def _bin_heading(self, index: int) -> float:
        return wrap(index * 2.0 * math.pi / self.config.heading_bins)

    def _stalled(self) -> bool:
        m = self._m
        return m.last_now is not None and m.last_now < m.stalled_until

    def _clear(self, obs: Observation, lookahead_m: Optional[float] = None,
               margin_m: Optional[float] = None) -> bool:
        c, m = self.config, self._m
        if self._stalled():
            return False
        if m.scan is not None:
            lookahead = lookahead_m or c.clear_lookahead_m
            half_width = c.robot_radius + (c.clear_margin_m if margin_m is None else margin_m)
            # A scan over the camera's view misses the corridor's sides near the robot:
            # what the map holds there counts too.
            return m.scan.corridor_clear(lookahead, half_width) and not (
                self._narrow() and m.scan_map is not None and
                not m.scan_map.corridor_clear(m.pose, lookahead, half_width))
        return obs.path_clear_prob >= c.blocked_threshold

    def _pclear(self, obs: Observation) -> str:
        """Describe the path ahead, for the reasons."""
        if self._m.scan is not None:
            text = 'scan: ' + ('clear' if self._clear(obs) else 'blocked')
        else:
            text = f'P(clear)={obs.path_clear_prob:.2f}'
        return f'stuck by odometry, {text}' if self._stalled() else text

    def _remember_view(self, obs: Observation) -> None:
        """Mark the headings in the camera's view as looked at from this spot."""
        c, m = self.config, self._m
        yaw = m.pose[2]
        half = c.hfov_rad / 2.0
        step = 2.0 * math.pi / c.heading_bins
        a = -half
        while a <= half + 1e-9:
            m.spot.looked.add(self._bin(yaw + a))
            a += step
        m.spot.clear[self._bin(yaw)] = self._clear(obs)
        if self._clear(obs):
            m.last_clear = m.pose

    def _travelled_since_clear(self) -> Optional[float]:
        """Return the distance driven since a clear view in (nearly) this heading, or None."""
        m = self._m
        if m.last_clear is None:
            return None
        x, y, yaw = m.pose
        cx, cy, cyaw = m.last_clear
        if abs(wrap(yaw - cyaw)) > 0.2:
            return None
        return math.hypot(x - cx, y - cy)

    def _sees(self, obs: Observation) -> bool:
        c, m = self.config, self._m
        threshold = c.lost_threshold if m.tracking else c.visible_threshold
        m.tracking = obs.visible_prob >= threshold
        return m.tracking

    def _remember_target(self, obs: Observation, bearing: float, now_s: float) -> None:
        x, y, yaw = self._m.pose
        heading = wrap(yaw + bearing)
        distance = 0.8 if obs.near_prob() >= 0.5 else 2.0
        self._m.target = TargetMemory(now_s, heading, x + distance * math.cos(heading),
                                      y + distance * math.sin(heading))
        self._m.reacquire_done = False

    def _heading_to_target(self) -> Optional[float]:
        m = self._m
        if m.target is None:
            return None
        x, y, _ = m.pose
        if math.hypot(m.target.x - x, m.target.y - y) < 0.3:
            return m.target.heading
        return math.atan2(m.target.y - y, m.target.x - x)

    # ---- search -------------------------------------------------------------------------
    def _search(self, obs: Observation, now_s: float) -> Decision:
        c, m = self.config, self._m
        if m.arrived:
            return Decision(0.0, 0.0, 'arrived', f'stopped in front of the {self.target}', True)
        seen = self._sees(obs)
        where = ''
        if seen:
            bearing = obs.expected_bearing(c.hfov_rad)
            self._remember_target(obs, bearing, now_s)
            p_center = obs.bearing_probs.get('center', 0.0)
            p_near = obs.near_prob()
            where = (f'P(visible)={obs.visible_prob:.2f} bearing {math.degrees(bearing):+.0f}° '
                     f'P(center)={p_center:.2f} P(near)={p_near:.2f}')
            if p_near >= c.near_threshold and p_center >= c.center_threshold and \
                    self._in_reach_by_depth():
                m.arrived = True
                m.detour = None
                return Decision(0.0, 0.0, 'arrived', f'{self.target} centred and near: {where}',
                                True)
        if m.detour is not None:
            decision = self._detour_step(obs, now_s)
            if decision is not None:
                return decision
        if not seen:
            return self._look_for(obs, now_s)
        m.relocate = None
        angular = c.turn_gain * bearing
        # Drive only as much as the target is straight ahead; slow down when near.
        linear = c.max_linear * p_center * (1.0 - 0.5 * p_near)
        if not self._clear(obs) and linear > 0.0:
            m.clear_run_from = None
            return self._blocked_approach(obs, now_s, linear, angular, where)
        self._note_clear_run(linear)
        phase = 'approaching' if linear > 0.05 else 'turning'
        return Decision(linear, angular, phase, f'{self.target} seen: {where}')

    def _in_reach_by_depth(self) -> bool:
        """
        Tell whether a scan over the camera's view agrees the centred target is near.

        The nearest return straight ahead (within arrive_cone_rad) must be within
        arrive_range_m; without such a scan, or with no return ahead, the model's answer
        stands alone.
        """
        c, m = self.config, self._m
        if not self._narrow():
            return True
        ahead = m.scan.range_toward(np.linspace(-c.arrive_cone_rad, c.arrive_cone_rad, 5))
        ahead = ahead[np.isfinite(ahead)]
        return not len(ahead) or float(ahead.min()) <= c.arrive_range_m

    def _note_clear_run(self, linear: float) -> None:
        """End the obstacle after a long clear approach: the next detour may pick a new side."""
        m = self._m
        if linear <= 0.05:
            return
        x, y, _ = m.pose
        if m.clear_run_from is None:
            m.clear_run_from = (x, y)
        elif math.hypot(x - m.clear_run_from[0], y - m.clear_run_from[1]) > 1.0:
            m.side = 0.0

    def _blocked_approach(self, obs: Observation, now_s: float, linear: float,
                          angular: float, where: str) -> Decision:
        """
        Face a seen target with something in the way, creep (it may be the target), detour.

        The path-clear answer covers the robot's width up to ~0.8 m ahead, so the target
        itself blocks it before it counts as near: an off-centre target is faced first,
        since a detour started off-centre circles it without arriving. Creeping is allowed
        only while the travel since the newest clear view in this heading stays within
        creep_m: inside what that view showed free, so a creep never runs into what it
        can't see.
        """
        c, m = self.config, self._m
        if obs.bearing_probs.get('center', 0.0) < c.center_threshold:
            return Decision(0.0, angular, 'turning',
                            f'{self.target} seen, path blocked ({self._pclear(obs)}): '
                            f'facing it first: {where}')
        travelled = self._travelled_since_clear()
        # Held in place (odometry): creeping would only push on.
        if not self._stalled() and travelled is not None and travelled < c.creep_m:
            # Hold the heading of that clear view: its corridor is what is known free.
            angular = c.turn_gain * wrap(m.last_clear[2] - m.pose[2])
            return Decision(min(c.creep_linear, linear), angular, 'creeping',
                            f'{self.target} seen but path blocked '
                            f'({self._pclear(obs)}), creeping '
                            f'({travelled:.2f} of {c.creep_m:.2f} m): {where}')
        return self._start_detour(obs, now_s, f'path to the {self.target} blocked')

    def _pick_side(self, now_s: float) -> Tuple[float, float]:
        """
        Return a detour's (first side, sweep amplitude).

        Keep going round the side of the recent detours (a wall is walked along, not
        see-sawed); else the side of a remembered clear heading closest to this one; else
        left. Either way the other side is tried next.
        """
        c, m = self.config, self._m
        if m.side and now_s < m.side_until:
            return m.side, 2.0 * c.detour_sweep_rad
        yaw = m.pose[2]
        best = None
        for index, clear in m.spot.clear.items():
            off = wrap(self._bin_heading(index) - yaw)
            if clear and 0.2 < abs(off) < c.detour_sweep_rad and \
                    (best is None or abs(off) < abs(best)):
                best = off
        return (-1.0 if best is not None and best < 0 else 1.0), c.detour_sweep_rad

    def _start_detour(self, obs: Observation, now_s: float, why: str) -> Decision:
        c, m = self.config, self._m
        side, amplitude = self._pick_side(now_s)
        m.detour = _Detour(side=side, amplitude=amplitude)
        return Decision(0.0, side * c.scan_angular, 'detouring',
                        f'{why} ({self._pclear(obs)}): looking for a way round, '
                        f'{"left" if side > 0 else "right"} first')

    def _detour_step(self, obs: Observation, now_s: float) -> Optional[Decision]:
        """Return the detour's next command, or None when it is over (search resumes)."""
        c, m = self.config, self._m
        d = m.detour
        clear = self._clear(obs)
        side_name = 'left' if d.side > 0 else 'right'
        if d.stage == 'turn':
            if clear and abs(d.offset) > 0.1:
                d.stage, d.margin_from = 'margin', m.pose[2]
                m.side, m.side_until = d.side, now_s + c.detour_memory_s
            elif d.side * d.offset >= d.amplitude:
                # Nothing clear this far on this side: the other side; after both, wider.
                d.side, d.flips = -d.side, d.flips + 1
                if d.flips % 2 == 0:
                    d.amplitude += c.detour_sweep_rad
                if d.amplitude > math.pi:
                    m.detour = None         # blocked all round: scan and move on elsewhere
                    m.side = 0.0
                    return None
            if d.stage == 'turn':
                side_name = 'left' if d.side > 0 else 'right'
                return Decision(0.0, d.side * c.scan_angular, 'detouring',
                                f'turning {side_name} until the path is clear '
                                f'({self._pclear(obs)})')
        if d.stage == 'margin':
            if not clear:
                d.stage = 'align'           # a narrow opening: back to where it was clear
            elif abs(wrap(m.pose[2] - d.margin_from)) < c.detour_margin_rad:
                return Decision(0.0, d.side * c.scan_angular, 'detouring',
                                f'path clear; turning {side_name} a little more to pass wide')
            else:
                d.stage, d.drive_from = 'drive', m.pose[:2]
        if d.stage == 'align':
            error = wrap(d.margin_from - m.pose[2])
            if abs(error) > 0.06:
                return Decision(0.0, math.copysign(0.5 * c.scan_angular, error), 'detouring',
                                'blocked a little further round: back to the clear heading')
            d.stage, d.drive_from = 'drive', m.pose[:2]
        if d.stage == 'drive':
            x, y, _ = m.pose
            driven = math.hypot(x - d.drive_from[0], y - d.drive_from[1])
            if not clear:
                d.stage = 'turn'
                if driven > 0.15:           # a new obstacle: a new sweep from here
                    d.offset, d.flips, d.amplitude = 0.0, 0, c.detour_sweep_rad
                return Decision(0.0, d.side * c.scan_angular, 'detouring',
                                f'blocked after {driven:.2f} m; turning {side_name}')
            if driven < c.detour_m:
                return Decision(c.explore_linear, 0.0, 'detouring',
                                f'driving past the obstacle ({driven:.2f} of '
                                f'{c.detour_m:.2f} m, {self._pclear(obs)})')
            d.stage = 'face'
        if d.stage == 'face':
            heading = self._heading_to_target()
            if heading is None or now_s - m.target.seen_s > c.target_memory_s:
                m.detour = None
                return None
            error = wrap(heading - m.pose[2])
            m.scan_direction = 1.0 if error > 0 else -1.0   # a scan from here goes on this way
            if abs(error) > 0.2 and m.tracking is False:
                return Decision(0.0, math.copysign(c.scan_angular, error), 'detouring',
                                f'turning back to where the {self.target} was '
                                f'({math.degrees(error):+.0f}°)')
        m.detour = None
        return None

    def _look_for(self, obs: Observation, now_s: float) -> Decision:
        c, m = self.config, self._m
        heading = self._heading_to_target()
        if heading is not None and not m.reacquire_done and \
                now_s - m.target.seen_s < c.target_memory_s:
            error = wrap(heading - m.pose[2])
            if abs(error) > 0.25:
                direction = 1.0 if error > 0 else -1.0
                m.scan_direction = direction
                lost_for = now_s - m.target.seen_s
                return Decision(0.0, direction * c.scan_angular, 'reacquiring',
                                f'{self.target} lost {lost_for:.1f} s ago; turning '
                                f'{"left" if direction > 0 else "right"} to where it was '
                                f'({math.degrees(error):+.0f}°)')
            m.reacquire_done = True
            self._note_vanished(heading)
        if m.approach is not None:
            started, heading = m.approach
            if m.odometer - started < c.approach_m:
                if m.relocate is None or m.relocate['heading'] != heading:
                    m.relocate = self._new_relocation(heading)
                return self._relocate_step(
                    obs, f'{self.target} seen that way but not when faced: closer '
                    f'({m.odometer - started:.1f} of {c.approach_m:.1f} m)')
            m.approach = None
        return self._look_around(obs, now_s, f'looking for the {self.target}')

    def _note_vanished(self, heading: float) -> None:
        """
        Note that the target seen toward heading is gone now it is faced.

        Seen at the image edges but not centred is what a far target does (the edges of a
        rectilinear image magnify, so it crosses the visibility limit there), and one
        peeking out beside something in front. Turning back and forth cannot change
        either; after vanish_repeats times from this spot, approach that way.
        """
        c, m = self.config, self._m
        x, y, _ = m.pose
        repeats = 1 + sum(1 for vx, vy, vh in m.vanished
                          if math.hypot(vx - x, vy - y) < c.spot_radius_m and
                          abs(wrap(vh - heading)) < 0.35)
        m.vanished.append((x, y, heading))
        if repeats >= c.vanish_repeats:
            m.approach, m.vanished = (m.odometer, heading), []

    # ---- scan the spot, then move to the least visited clear heading ------------------
    def _look_around(self, obs: Observation, now_s: float, why: str) -> Decision:
        """
        Scan a spot all round, then walk the walls to the next spot.

        The walk follows the left-hand or right-hand rule with a forward 'clear?' only, to
        the next spot scan_spacing_m of travel further on: walls lead through their
        openings into the other rooms.
        """
        c, m = self.config, self._m
        if m.scan_map is not None and m.scan is not None:
            return self._explore_map(obs, now_s, why)
        due = m.last_scan_odometer is None or \
            m.odometer - m.last_scan_odometer >= c.scan_spacing_m or \
            now_s - m.last_scan_s >= c.relocate_s
        missing = c.heading_bins - len(m.spot.looked)
        if due and missing > 0:
            return Decision(0.0, m.scan_direction * c.scan_angular, 'scanning',
                            f'{why}: P(visible)={obs.visible_prob:.2f}; '
                            f'{missing * 360 // c.heading_bins}° not yet looked at here')
        if due:
            m.last_scan_odometer, m.last_scan_s = m.odometer, now_s
        if m.relocate is None:
            m.relocate = self._new_relocation(self._pick_heading())
        return self._relocate_step(obs, why)

    def _new_relocation(self, heading: Optional[float]) -> dict:
        return {'heading': heading, 'stage': 'face', 'wall': False,
                'probe_from': self._m.odometer, 'probe_yaw': 0.0,
                'trail': []}                 # (odometer, x, y) every 0.3 m along a wall

    def _pick_heading(self) -> Optional[float]:
        """Pick the clear heading from this spot whose end is farthest from visited places."""
        c, m = self.config, self._m
        x, y, _ = m.pose
        best, best_score = None, -math.inf
        for index, clear in m.spot.clear.items():
            if not clear:
                continue
            h = self._bin_heading(index)
            px, py = x + c.scan_spacing_m * math.cos(h), y + c.scan_spacing_m * math.sin(h)
            score = min(math.hypot(px - vx, py - vy) for vx, vy in m.visited)
            if m.target is not None:         # toward where the target was last seen
                score += 1.5 * math.cos(wrap(h - self._heading_to_target()))
            if score > best_score:
                best, best_score = h, score
        return best

    def _relocate_step(self, obs: Observation, why: str) -> Decision:
        c, m = self.config, self._m
        r = m.relocate
        x, y, yaw = m.pose
        avoid = m.scan_direction            # turn this way off a wall; probe the other way
        clear = self._clear(obs)
        trail = r['trail']
        if r['wall'] and any(m.odometer - along > c.loop_m and math.hypot(x - tx, y - ty) <
                             c.spot_radius_m for along, tx, ty in trail):
            # Back where this walk has been: it went round a lone object (or a whole room).
            # Leave it: straight out, away from the side it was following.
            r = m.relocate = self._new_relocation(wrap(yaw + avoid * math.pi / 2.0))
            why = f'{why}: went round an obstacle back to where it began'
        elif not trail or math.hypot(x - trail[-1][1], y - trail[-1][2]) > 0.3:
            trail.append((m.odometer, x, y))
        if r['stage'] == 'face':
            if r['heading'] is None:
                r['stage'] = 'drive'
            else:
                error = wrap(r['heading'] - yaw)
                if abs(error) > 0.15:
                    return Decision(0.0, math.copysign(c.scan_angular, error), 'relocating',
                                    f'{why}: turning to the least visited clear heading '
                                    f'({math.degrees(error):+.0f}°)')
                r['stage'] = 'drive'
        if r['stage'] == 'drive' and not clear:
            r['stage'], r['wall'] = 'avoid', True
        if r['stage'] == 'avoid':
            if not clear:
                return Decision(0.0, avoid * c.scan_angular, 'avoiding',
                                f'{why}: path blocked ({self._pclear(obs)}), '
                                'turning along it')
            r['stage'], r['probe_from'] = 'drive', m.odometer
        if r['stage'] == 'drive' and r['wall'] and \
                m.odometer - r['probe_from'] >= c.wall_probe_m:
            r['stage'], r['probe_yaw'] = 'probe', yaw
        if r['stage'] == 'probe':
            if not clear:
                r['stage'] = 'avoid'
                return Decision(0.0, avoid * c.scan_angular, 'avoiding',
                                f'{why}: the wall is still there; turning along it')
            if abs(wrap(yaw - r['probe_yaw'])) < c.wall_probe_rad:
                return Decision(0.0, -avoid * c.scan_angular, 'relocating',
                                f'{why}: checking whether the wall goes on')
            r['stage'], r['probe_from'] = 'drive', m.odometer   # a corner or an opening
        return Decision(c.explore_linear, 0.0, 'relocating',
                        f'{why}: moving on{" along a wall" if r["wall"] else ""} '
                        f'({self._pclear(obs)})')

    # ---- with a range scan: look at what the camera has not seen, go where it can -------
    def _explore_map(self, obs: Observation, now_s: float, why: str) -> Decision:
        c, m = self.config, self._m
        smap, pose = m.scan_map, m.pose
        if m.path is None:
            look = self._fill_unknown(obs, why) if self._narrow() else None
            look = look or self._sweep(obs, why)
            if look is not None:
                return look
        if m.path is None or now_s - m.path_s >= c.replan_s:
            planned, m.path_s = smap.plan(pose, m.goal), now_s
            m.path, m.goal = planned if planned is not None else (None, None)
            if m.path is None:
                # Everything in reach looked at and no target: look at it all again (the
                # model may have missed it), from wherever the robot is.
                smap.looked[:] = smap.glanced[:] = smap.dropped[:] = False
                return Decision(0.0, c.max_angular, 'looking',
                                f'{why}: everything in reach looked at; looking again')
        end = m.path[-1]
        if math.hypot(end[0] - pose[0], end[1] - pose[1]) < 0.25:
            # At the viewpoint: look round (the sweep); what it still can't see from here
            # is hidden: give it up.
            if not len(smap.unlooked_bearings(pose, m.scan, by_map=self._narrow())):
                smap.drop_near(*smap.centre(*m.goal), 0.4)
            m.path = m.goal = None
            return Decision(0.0, 0.0, 'looking', f'{why}: at the viewpoint')
        decision = self._follow_path(obs, m.path, f'{why}: to a viewpoint of what is not '
                                     'seen yet')
        if decision.phase == 'avoiding':
            m.blocks = [t for t in m.blocks if now_s - t < 10.0] + [now_s]
            m.path = None
            if len(m.blocks) >= 3:           # the map's way there doesn't fit: another goal
                smap.drop_near(*smap.centre(*m.goal), 0.4)
                m.goal, m.blocks = None, []
        return decision

    def _follow_path(self, obs: Observation, path, why: str) -> Decision:
        """
        Follow a planned path by pure pursuit.

        Turn in place onto the path, drive with proportional steering; stop and turn when
        the scan shows the robot closer to something than the map's clearance (a corner
        cut, a thing the map missed).
        """
        c, m = self.config, self._m
        pose = m.pose
        target, left = lookahead_point(path, pose, 0.35)
        error = wrap(math.atan2(target[1] - pose[1], target[0] - pose[0]) - pose[2])
        if abs(error) > 0.45:
            return Decision(0.0, math.copysign(c.max_angular, error), 'relocating',
                            f'{why}: turning onto the path ({math.degrees(error):+.0f}°)')
        if not self._clear(obs, 0.3, 0.0):
            turn = math.copysign(1.0, error) if abs(error) > 0.1 else \
                -m.scan.nearest_side(0.6) or 1.0
            return Decision(0.0, turn * c.scan_angular, 'avoiding',
                            f'{why}: path blocked ({self._pclear(obs)}), turning away')
        angular = max(-c.max_angular, min(c.max_angular, c.turn_gain * error))
        linear = c.max_linear * max(0.0, math.cos(error))
        return Decision(linear, angular, 'relocating', f'{why}, {left + 0.35:.1f} m of path')

    def _narrow(self) -> bool:
        """Tell whether the range scan covers only part of the circle (a depth camera's)."""
        scan = self._m.scan
        return scan is not None and \
            len(scan.ranges) * abs(scan.angle_increment) < self.config.narrow_scan_rad

    def _fill_unknown(self, obs: Observation, why: str) -> Optional[Decision]:
        """
        Turn toward headings the map does not know near the robot; None when there are none.

        A scan over the camera's view alone maps only what the robot faces: before the map
        is trusted to choose where to go, the headings around the robot whose ray meets
        unknown cells within fill_radius_m are looked at, each once from this spot
        (a heading whose depth measured nothing stays unknown). One way while there is
        any that way, then the other.
        """
        c, m = self.config, self._m
        bearings = m.scan_map.unknown_bearings(m.pose, c.heading_bins, c.fill_radius_m)
        yaw = m.pose[2]
        bearings = np.array([b for b in bearings
                             if self._bin(yaw + b) not in m.spot.looked])
        if not len(bearings):
            return None
        ahead = m.scan_direction * bearings > 0.0
        if not ahead.any():
            m.scan_direction = -m.scan_direction
        side = 'left' if m.scan_direction > 0 else 'right'
        return Decision(0.0, m.scan_direction * c.max_angular, 'looking',
                        f'{why}: P(visible)={obs.visible_prob:.2f}; turning {side} over '
                        f'{len(bearings)} headings the map does not know yet')

    def _sweep(self, obs: Observation, why: str) -> Optional[Decision]:
        """
        Turn over what is in sight and not looked at yet; None when there is none.

        One way while there is any ahead that way (an answer per frame marks it), then the
        other.
        """
        c, m = self.config, self._m
        bearings = m.scan_map.unlooked_bearings(m.pose, m.scan, by_map=self._narrow())
        if not len(bearings):
            return None
        in_view = c.hfov_rad / 2.0 - 0.15
        ahead = m.scan_direction * bearings > -in_view
        if not ahead.any():
            m.scan_direction = -m.scan_direction
        side = 'left' if m.scan_direction > 0 else 'right'
        return Decision(0.0, m.scan_direction * c.max_angular, 'looking',
                        f'{why}: P(visible)={obs.visible_prob:.2f}; turning {side} over '
                        f'{len(bearings)} map cells not seen yet')

    # ---- follow -------------------------------------------------------------------------
    def _follow(self, obs: Observation, now_s: float) -> Decision:
        c, m = self.config, self._m
        if not self._sees(obs):
            m.follow_holding = m.follow_turning = False
            return self._look_for(obs, now_s)
        bearing = obs.expected_bearing(c.hfov_rad)
        self._remember_target(obs, bearing, now_s)
        m.relocate = None
        # Hysteresis on bearing: start turning beyond the deadband, stop within half of it,
        # so a target near the centre doesn't make the robot wiggle.
        if abs(bearing) > c.follow_deadband_rad:
            m.follow_turning = True
        elif abs(bearing) < c.follow_deadband_rad / 2.0:
            m.follow_turning = False
        angular = c.turn_gain * bearing if m.follow_turning else 0.0
        # Hysteresis on distance: hold at 'near', drive again only once clearly not near.
        p_near = obs.near_prob()
        if p_near >= c.near_threshold:
            m.follow_holding = True
        elif p_near < c.follow_release:
            m.follow_holding = False
        linear = 0.0 if m.follow_holding else \
            c.max_linear * obs.bearing_probs.get('center', 0.0)
        if linear > 0.0 and not self._clear(obs):
            return Decision(0.0, angular, 'holding',
                            f'{self.target} ahead but path blocked '
                            f'({self._pclear(obs)}): waiting')
        phase = 'holding' if linear == 0.0 else 'following'
        return Decision(linear, angular, phase,
                        f'following {self.target}: bearing {math.degrees(bearing):+.0f}° '
                        f'P(near)={p_near:.2f}')
