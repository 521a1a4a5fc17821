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
Navigator: asks the VLM node about the target on the newest frame and drives.

Perception arrives asynchronously (Observe service, call_async, one request in
flight); a control timer turns the newest observation into a Twist through the
pure policy and the velocity limiter. When the newest observation's frame is older
than perception_timeout_s, the robot is stopped at once and holds.

With a planar lidar (sensor_msgs/LaserScan on scan, use_scan) the policy maps it and
takes the path ahead from it. The scan's header.frame_id is honoured (REP 105): a scan in
base_frame is used as it is; one in scan_frame is moved onto the base by the static
scan_to_base transform; any other frame through tf2 where tf2_ros is installed (a ROS
distro; the pip path has no tf2 wheels). A scan in a frame it cannot place (an empty
frame_id included) is refused, counted and reported on /diagnostics with what to set,
never taken to be the base's. A scan older than scan_timeout_s is not used: the policy
goes back to the camera alone.

With a depth camera and no lidar (use_depth: sensor_msgs/Image on camera/depth/image_raw,
REP 118 32FC1 metres or 16UC1 millimetres, with its camera_info) the depth image becomes
a planar scan over the camera's view (vlm_nav.nav.depth_scan: the points within a height
band above the floor, placed on the base by the camera's intrinsics from camera_info and
its mounting pose: depth_camera_frame's static depth_camera_to_base, other frames through
tf2) and goes into the same map and policy as a lidar's scan (a lidar's, when fresh, is
preferred). Depth older than depth_timeout_s is not used, as a stale scan; an image that
cannot be used (an encoding that is not depth, no camera_info, a frame it cannot place)
is refused, counted and reported on /diagnostics. The target's range on
vlm_nav/target_pose comes from the depth at the target's bearing.

The FindObject action (vlm_nav/find_object) runs one search or follow as a goal with
feedback, cancel and a timeout; SetTarget, the mode and target parameters, or a newer
goal preempt it. Goals are taken up, ended and reported by the control loop, so they
never race it, whichever executor spins the node.

Targets are checked against the model's vocabulary: the navigator reads vlm_node's model
parameter, and a model folder with a vocabulary file (the embedded model's) declares the
only things it knows; anything else is refused with that list. Until vlm_node answers,
targets are taken and checked once it does.
"""

from collections import deque
from dataclasses import dataclass
import math
import threading
import time
from typing import Any, List, Optional, Tuple, Union

from geometry_msgs.msg import PoseStamped, Twist, TwistStamped
from nav_msgs.msg import OccupancyGrid, Odometry
import numpy as np
from rcl_interfaces.msg import ParameterType, SetParametersResult
from rcl_interfaces.srv import GetParameters
import rclpy
from rclpy.action import ActionServer, CancelResponse
from rclpy.callback_groups import ReentrantCallbackGroup
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rclpy.task import Future
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from visualization_msgs.msg import MarkerArray

from vlm_nav.models import resolve_model
from vlm_nav.models.embedded import model_vocabulary
from vlm_nav.nav.debug_view import draw_debug
from vlm_nav.nav.depth_scan import CameraMount, depth_scan, Intrinsics, range_at_bearing
from vlm_nav.nav.free_text import Answer, FreeTextPolicy
from vlm_nav.nav.limits import VelocityLimiter
from vlm_nav.nav.policy import (config_from_parameters, Decision, MODES,
                                NavigationPolicy, POLICY_PARAMETERS, POLICY_PARAMS)
from vlm_nav.nav.scan_map import Scan, scan_in_base, ScanMount
from vlm_nav.nav.target_pose import target_pose, yaw_quaternion
from vlm_nav.perception.checks import observation_problem
from vlm_nav.perception.vocabulary import (BEARINGS, check_target, normalise_target,
                                           Observation)
from vlm_nav.ros.diagnostics import DiagnosticsPublisher, OK, WARN
from vlm_nav.ros.image import depth_to_metres, image_to_rgb, ImageError, rgb_to_image
from vlm_nav.ros.markers import policy_markers, scan_map_grid
from vlm_nav.ros.params import check_choices, declare
from vlm_nav.ros.session import ros_session
from vlm_nav_interfaces.action import FindObject
from vlm_nav_interfaces.msg import NavigatorState
from vlm_nav_interfaces.srv import Ask, Observe, SetTarget

try:                      # a ROS distro; the pip path has no tf2 wheels: scan_to_base only
    import tf2_ros
except ImportError:
    tf2_ros = None

# A frame stamp may lead the navigator's clock by this much (clock skew between
# machines); further ahead it would look fresh for too long and is refused.
MAX_FUTURE_STAMP_S = 0.2

# 'original' (the benchmark's name for the free-text baseline) is accepted as well.
POLICIES = ('scored', 'free_text', 'original')
FREE_TEXT_POLICIES = ('free_text', 'original')

# Odometry older than this is not used; the policy dead-reckons from its commands instead.
ODOM_TIMEOUT_S = 0.5

# FindObject: the modes a goal may ask for, and its feedback period (5 Hz).
GOAL_MODES = ('search', 'follow')
FEEDBACK_PERIOD_S = 0.2

# Depth images kept for the target's range: the one of the observation's frame is looked up
# by stamp (within DEPTH_MATCH_S).
DEPTH_HISTORY = 8
DEPTH_MATCH_S = 0.06


@dataclass
class _Depth:
    """One usable depth image: when it came, its stamp, the odometry pose at its stamp."""

    received_s: float
    stamp_s: float
    pose: Tuple[float, float, float]
    metres: np.ndarray
    intrinsics: Intrinsics
    mount: CameraMount
    scan: Scan


# The node whose model parameter names the model (its vocabulary), asked this often until
# it answers.
VLM_NODE = 'vlm_node'
VOCABULARY_RETRY_S = 2.0


@dataclass
class _Goal:
    """One FindObject goal: its handle, what it asked for, and the future its result ends."""

    handle: Any
    done: Future
    mode: str = ''
    target: str = ''
    timeout_s: float = 0.0
    started_s: float = 0.0
    feedback_s: float = -math.inf
    target_pose: Optional[PoseStamped] = None   # the newest one published while it ran


class NavigatorNode(Node):

    def __init__(self, **kwargs):
        super().__init__('navigator_node', **kwargs)
        declare(self, 'mode', 'idle', 'initial mode; idle with a target set starts a search',
                choices=MODES)
        declare(self, 'target', '', 'initial target (free text)')
        declare(self, 'policy', 'scored', 'scored: closed-set probabilities (Observe); '
                'free_text (or original): the free-text baseline, one free-text Ask per '
                'decision searched for words (the benchmark baseline)', choices=POLICIES,
                read_only=True)
        declare(self, 'control_rate_hz', 20.0, 'control loop rate', 1.0, 200.0, read_only=True)
        declare(self, 'perception_timeout_s', 1.0,
                'stop when the newest observation is older than this', 0.05, 30.0)
        declare(self, 'request_timeout_s', 2.0, 'give up on an Observe call after this',
                0.1, 60.0)
        declare(self, 'max_linear_accel', 0.5, 'm/s^2', 0.01, 10.0)
        declare(self, 'max_angular_accel', 2.0, 'rad/s^2', 0.01, 20.0)
        declare(self, 'hfov_deg', 60.0, 'camera horizontal field of view', 10.0, 180.0)
        declare(self, 'visualization_rate_hz', 5.0,
                'vlm_nav/debug_image (frame + answers + decision) and vlm_nav/markers (what '
                'was seen where, odom frame), each drawn only while someone subscribes; '
                '0 = off', 0.0, 30.0, read_only=True)
        for name, parameter in POLICY_PARAMETERS.items():
            declare(self, name, float(parameter.default), parameter.description,
                    parameter.low, parameter.high)
        declare(self, 'use_scan', True, 'map the planar lidar on scan (when one publishes) '
                'for the path ahead and for exploring', read_only=True)
        declare(self, 'scan_timeout_s', 0.5, 'a scan older than this is not used', 0.05, 10.0)
        declare(self, 'enable_stamped_cmd_vel', False, 'publish geometry_msgs/TwistStamped '
                '(stamp, frame_id = base_frame) on cmd_vel instead of Twist, as Nav2 on '
                "Kilted and ros2_control's diff_drive_controller expect", read_only=True)
        declare(self, 'base_frame', 'base_link', "the robot's base frame (REP 105): the "
                'frame_id of stamped commands', read_only=True)
        declare(self, 'odom_frame', 'odom', 'the odometry frame (REP 105): the frame_id of '
                'vlm_nav/target_pose', read_only=True)
        declare(self, 'scan_frame', '', "the lidar's frame that scan_to_base places on "
                "base_frame ('' = none); scans in base_frame need neither, scans in other "
                'frames need tf2 (a ROS distro)', read_only=True)
        declare(self, 'scan_to_base', [0.0, 0.0, 0.0], "scan_frame's pose in base_frame, "
                'as static_transform_publisher takes it: [x, y, yaw] or '
                '[x, y, z, roll, pitch, yaw] (m, rad); level lidars only: pitch 0, roll 0 '
                'or pi (upside down)', read_only=True)
        declare(self, 'use_depth', False, 'map a depth camera (camera/depth/image_raw, REP 118 '
                '32FC1 m or 16UC1 mm, with camera/depth/camera_info) as a planar scan over its '
                'view, for a robot without a lidar; a fresh lidar scan is preferred',
                read_only=True)
        declare(self, 'depth_timeout_s', 0.5, 'a depth image older than this is not used',
                0.05, 10.0)
        declare(self, 'depth_camera_frame', 'camera', "the depth image's frame that "
                "depth_camera_to_base places on base_frame ('' = none; other frames need tf2, "
                'a ROS distro, where they are taken as optical frames, REP 103)',
                read_only=True)
        declare(self, 'depth_camera_to_base', [0.0, 0.0, 0.45, 0.0, 0.1745, 0.0],
                "the depth camera's pose in base_frame, [x, y, z, roll, pitch, yaw] (m, rad), "
                'of its body frame (x forward, z up; positive pitch looks down), z its height '
                "above the floor; the image's optical frame is that rotated as REP 103 has it "
                "(the simulator's camera differs per layout: sim_node reports camera_to_base)",
                read_only=True)
        declare(self, 'depth_min_height', 0.05, 'depth points at least this high above the '
                'floor (base frame z) are obstacles (below: the floor)', -1.0, 5.0,
                read_only=True)
        declare(self, 'depth_max_height', 1.0, 'depth points at most this high are '
                "obstacles (above: beyond the robot's height)", 0.0, 10.0, read_only=True)
        declare(self, 'depth_range_max', 6.0, 'depth points farther (horizontally) are not '
                'obstacles: free to this range', 0.3, 50.0, read_only=True)
        declare(self, 'depth_pixel_step', 0, 'use every n-th row and column of the depth '
                'image; 0 = so that at most 160 columns remain', 0, 64, read_only=True)
        declare(self, 'depth_target_half_width_deg', 5.0, "the target's range: the depth "
                "within this of the target's bearing, in the image third the model places it "
                'in', 0.5, 30.0, read_only=True)
        self.add_on_set_parameters_callback(self._validate_parameters)
        self.add_post_set_parameters_callback(self._on_parameters_set)

        self._free_text = self.get_parameter('policy').value in FREE_TEXT_POLICIES
        self._policy = FreeTextPolicy() if self._free_text else NavigationPolicy()
        self._limiter = VelocityLimiter()
        self._apply_parameters([])
        self._observation: Optional[Observation] = None
        # Its frame's stamp exactly as vlm_node sent it: float seconds lose ~100s of ns,
        # and newer_than must name the frame we have, not a stamp near it.
        self._observation_stamp = None
        self._obs_latency = 0.0
        self._pending = None
        self._pending_since = 0.0
        self._last_tick: Optional[float] = None
        self._last = Decision(0.0, 0.0, 'idle', 'starting')
        self._stale = False
        self._odom: Optional[tuple] = None          # (stamp_s, (x, y, yaw))
        self._odom_history = deque(maxlen=60)       # (header stamp_s, (x, y, yaw))
        self._scan: Optional[Tuple[float, Scan]] = None   # (received at, scan)
        self._scans = {'received': 0, 'refused': 0}
        self._scan_frame_problem = ''               # why the newest scan's frame was refused
        self._depth_history = deque(maxlen=DEPTH_HISTORY)   # _Depth, newest last
        self._depth_info: Optional[CameraInfo] = None
        self._depths = {'received': 0, 'refused': 0}
        self._depth_problem = ''                   # why the newest depth image was refused
        self._odom_frame = 'odom'
        self._frame: Optional[Image] = None         # newest camera frame (debug image only)
        self._counts = {'observations': 0, 'observe_failures': 0, 'stale_stops': 0,
                        'invalid_observations': 0, 'set_target_rejected': 0,
                        'last_observe_error': ''}
        # Why perception failed since the newest observation: vlm_node's reason (it names
        # the model server when the model is served), said with a stale stop.
        self._failure = ''

        self._stamped = self.get_parameter('enable_stamped_cmd_vel').value
        self._base_frame = self.get_parameter('base_frame').value
        self._scan_frame = self.get_parameter('scan_frame').value
        self._scan_to_base, self._scan_to_base_problem = None, ''
        try:
            self._scan_to_base = ScanMount.from_values(
                self.get_parameter('scan_to_base').value)
        except ValueError as error:
            self._scan_to_base_problem = f'scan_to_base refused: {error}'
            if self._scan_frame:
                self.get_logger().error(f'{self._scan_to_base_problem}; scans in '
                                        f'{self._scan_frame!r} will be refused')
        self._use_depth = self.get_parameter('use_depth').value and not self._free_text
        self._depth_frame = self.get_parameter('depth_camera_frame').value
        self._depth_to_base, self._depth_to_base_problem = None, ''
        try:
            self._depth_to_base = CameraMount.from_values(
                self.get_parameter('depth_camera_to_base').value)
        except ValueError as error:
            self._depth_to_base_problem = f'depth_camera_to_base refused: {error}'
            if self._use_depth and self._depth_frame:
                self.get_logger().error(f'{self._depth_to_base_problem}; depth images in '
                                        f'{self._depth_frame!r} will be refused')
        self._tf_buffer = None
        self._cmd_pub = self.create_publisher(
            TwistStamped if self._stamped else Twist, 'cmd_vel',
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._state_pub = self.create_publisher(NavigatorState, 'vlm_nav/navigator_state', 10)
        # The target's pose (odom frame) whenever it is seen and its range is known, once
        # per observation, for Nav2's following server or any planner.
        self._target_pose_pub = self.create_publisher(PoseStamped, 'vlm_nav/target_pose', 10)
        self._target_pose_frame = self.get_parameter('odom_frame').value
        self._target_pose_stamp = None    # stamp of the observation last published from
        self._target_pose_last = None     # (target, PoseStamped) last published
        # Odometry: the policy's memory of where the target was and which headings were
        # looked at lives in the odom frame.
        self.create_subscription(Odometry, 'odom', self._on_odom, 10)
        use_scan = self.get_parameter('use_scan').value and not self._free_text
        if use_scan:
            self.create_subscription(LaserScan, 'scan', self._on_scan, qos_profile_sensor_data)
        if self._use_depth:
            self.create_subscription(Image, 'camera/depth/image_raw', self._on_depth,
                                     qos_profile_sensor_data)
            self.create_subscription(CameraInfo, 'camera/depth/camera_info',
                                     self._on_depth_info, qos_profile_sensor_data)
        if (use_scan or self._use_depth) and tf2_ros is not None:
            self._tf_buffer = tf2_ros.Buffer()
            self._tf_listener = tf2_ros.TransformListener(self._tf_buffer, self)
        self._observe = self.create_client(Observe, 'vlm_nav/observe')
        self._ask = self.create_client(Ask, 'vlm_nav/ask')
        rate = self.get_parameter('visualization_rate_hz').value
        if rate > 0.0:
            self._debug_pub = self.create_publisher(Image, 'vlm_nav/debug_image',
                                                    qos_profile_sensor_data)
            self._marker_pub = self.create_publisher(MarkerArray, 'vlm_nav/markers', 10)
            self._grid_pub = None
            if use_scan or self._use_depth:
                self._grid_pub = self.create_publisher(OccupancyGrid, 'vlm_nav/scan_map', 1)
            self.create_subscription(Image, 'camera/image_raw', self._on_image,
                                     qos_profile_sensor_data)
            self.create_timer(1.0 / rate, self._publish_visualization)
        self.create_service(SetTarget, 'vlm_nav/set_target', self._on_set_target)
        # FindObject: the server only hands goals to the control loop (_serve_goals) and
        # waits for their result, in a group of its own so the wait blocks nothing else.
        self._goal: Optional[_Goal] = None
        self._goal_inbox: List[_Goal] = []
        self._goal_lock = threading.Lock()
        self._action = ActionServer(
            self, FindObject, 'vlm_nav/find_object', self._execute_goal,
            callback_group=ReentrantCallbackGroup(), cancel_callback=self._on_cancel)
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_timer(1.0, self._publish_diagnostics)
        # The model's vocabulary: (how replies name the model, its closed vocabulary or None
        # for any target); None until vlm_node said which model it serves.
        self._vocabulary: Optional[Tuple[str, Optional[List[str]]]] = None
        self._vocabulary_new = False
        self._vocabulary_call = None
        self._model_name = ''             # model_name of the newest Observe reply
        self._get_parameters = self.create_client(GetParameters,
                                                  f'{VLM_NODE}/get_parameters')
        self.create_timer(VOCABULARY_RETRY_S, self._ask_vocabulary)
        mode, target = self.get_parameter('mode').value, self.get_parameter('target').value
        if target.strip():
            try:
                target = normalise_target(target)
            except ValueError as error:
                self.get_logger().error(f'target parameter refused: {error}; idle')
                mode, target = 'idle', ''
        self._set_mode('search' if mode == 'idle' and target.strip() else mode, target.strip())
        period = 1.0 / self.get_parameter('control_rate_hz').value
        self.create_timer(period, self._tick)

    # ---- configuration ------------------------------------------------------------------
    def _apply_parameters(self, _params) -> None:
        config = config_from_parameters({
            name: self.get_parameter(name).value for name in ('hfov_deg', *POLICY_PARAMS)})
        self._policy.config = config
        self._limiter.max_linear = config.max_linear
        self._limiter.max_angular = config.max_angular
        self._limiter.max_linear_accel = self.get_parameter('max_linear_accel').value
        self._limiter.max_angular_accel = self.get_parameter('max_angular_accel').value

    def _validate_parameters(self, params) -> SetParametersResult:
        """Check mode and target set as parameters the way SetTarget checks them."""
        result = check_choices(params, {'mode': MODES})
        new = {p.name: p.value for p in params if p.name in ('mode', 'target')}
        if not result.successful or not new:
            return result
        mode = new.get('mode', self.get_parameter('mode').value)
        target = new.get('target', self.get_parameter('target').value)
        try:
            if target.strip():
                self._checked_target(target)
            elif mode in ('search', 'follow'):
                raise ValueError(f'mode {mode} needs a target')
        except ValueError as error:
            return SetParametersResult(successful=False, reason=str(error))
        return result

    def _on_parameters_set(self, params) -> None:
        self._apply_parameters(params)
        if any(p.name in ('mode', 'target') for p in params):
            target = self.get_parameter('target').value
            self._set_mode(self.get_parameter('mode').value,
                           normalise_target(target) if target.strip() else '')

    def _on_set_target(self, request: SetTarget.Request,
                       response: SetTarget.Response) -> SetTarget.Response:
        mode = request.mode.strip().lower()
        try:
            if mode not in MODES:
                raise ValueError(f'unknown mode {request.mode!r}; one of {", ".join(MODES)}')
            target = request.target.strip()
            if mode in ('search', 'follow') or target:
                target = self._checked_target(target)
        except ValueError as error:
            response.success, response.message = False, str(error)
            self._counts['set_target_rejected'] += 1
            self.get_logger().warning(f'SetTarget rejected: {error}', throttle_duration_sec=1.0)
            return response
        self._set_mode(mode, target)
        response.success = True
        response.message = f'mode {mode}' + (f', target {target!r}' if target else '')
        if target and self._vocabulary is None:
            response.message += ("; the model's vocabulary is not known yet (vlm_node has "
                                 'not answered): the target is checked once it does')
        return response

    # ---- the model's vocabulary -------------------------------------------------------------
    def _checked_target(self, text: str) -> str:
        """Return the normalised target; raise ValueError if unusable or unknown to the model."""
        name, known = self._vocabulary or ('the model', None)
        return check_target(text, known, name)

    def _ask_vocabulary(self) -> None:
        """Ask vlm_node which model it serves, until it answers."""
        if self._vocabulary is not None or not self._get_parameters.service_is_ready():
            return
        if self._vocabulary_call is not None and not self._vocabulary_call.done():
            return
        self._vocabulary_call = self._get_parameters.call_async(
            GetParameters.Request(names=['model']))
        self._vocabulary_call.add_done_callback(self._on_model_parameter)

    def _on_model_parameter(self, future) -> None:
        try:
            values = future.result().values
        except Exception as error:  # noqa: B902 - asked again at the next retry
            self.get_logger().warning(f'{VLM_NODE} model parameter: {error}',
                                      throttle_duration_sec=10.0)
            return
        if len(values) != 1 or values[0].type != ParameterType.PARAMETER_STRING:
            return
        try:
            vocabulary = model_vocabulary(resolve_model(values[0].string_value))
        except ValueError as error:
            self.get_logger().error(f'{error}; any target is taken', once=True)
            vocabulary = ('the model', None)
        self._vocabulary, self._vocabulary_new = vocabulary, True

    def _recheck_target(self) -> None:
        """Check the target taken before the vocabulary was known; refuse it now if unknown."""
        self._vocabulary_new = False
        target = self._policy.target
        if self._policy.mode not in ('search', 'follow') or not target:
            return
        try:
            self._checked_target(target)
        except ValueError as error:
            self.get_logger().error(f'target refused: {error}; idle')
            if self._goal is not None:
                self._end_goal('refused', str(error))
            self._set_mode('idle', '')

    def _set_mode(self, mode: str, target: str) -> None:
        if self._goal is not None:
            self._end_goal('preempted', f'preempted: mode {mode}' +
                           (f', target {target!r}' if target else '') + ' set')
        self._policy.reset(mode, target)
        self._observation = self._observation_stamp = None   # never act on the old target's
        self._pending = None
        self._limiter.stop()
        self._publish_twist(0.0, 0.0)
        self.get_logger().info(f'mode {mode}' + (f', target {target!r}' if target else ''))

    # ---- FindObject goals ------------------------------------------------------------------
    async def _execute_goal(self, handle) -> FindObject.Result:
        """Hand the goal to the control loop and wait for the result it ends with."""
        goal = _Goal(handle, Future())
        with self._goal_lock:
            self._goal_inbox.append(goal)
        result = await goal.done
        if result.outcome == 'arrived':
            handle.succeed()
        elif result.outcome == 'canceled' and handle.is_cancel_requested:
            handle.canceled()
        else:
            handle.abort()
        return result

    def _on_cancel(self, _handle) -> CancelResponse:
        """Accept a cancel and stop at once; the control loop then ends the goal canceled."""
        self._publish_twist(0.0, 0.0)
        return CancelResponse.ACCEPT

    def _serve_goals(self, now: float) -> None:
        """Take up new goals (each preempts the one before) and end a canceled one."""
        with self._goal_lock:
            inbox, self._goal_inbox = self._goal_inbox, []
        for goal in inbox:
            self._start_goal(goal, now)
        goal = self._goal
        if goal is not None and goal.handle.is_cancel_requested:
            self._end_goal('canceled', 'canceled: stopped')
            self._set_mode('idle', '')

    def _start_goal(self, goal: _Goal, now: float) -> None:
        request = goal.handle.request
        try:
            mode = request.mode.strip().lower() or 'search'
            if mode not in GOAL_MODES:
                raise ValueError(f'unknown mode {request.mode!r}; one of '
                                 f'{", ".join(GOAL_MODES)}')
            if not (math.isfinite(request.timeout_s) and request.timeout_s >= 0.0):
                raise ValueError(f'timeout_s is {request.timeout_s}; give 0 (none) or more')
            target = self._checked_target(request.target)
        except ValueError as error:
            goal.started_s = now
            self._finish(goal, 'refused', str(error), now)
            return
        if self._goal is not None:
            self._end_goal('preempted', f'preempted by a new goal: {mode} {target!r}')
        self._set_mode(mode, target)
        goal.mode, goal.target, goal.timeout_s = mode, target, float(request.timeout_s)
        goal.started_s = now
        self._goal = goal

    def _goal_progress(self, now: float) -> None:
        """End the running goal when it arrived or timed out; else send feedback if due."""
        goal = self._goal
        if goal is None:
            return
        elapsed = now - goal.started_s
        if goal.mode == 'search' and self._last.arrived:
            self._end_goal('arrived', self._last.reason)
        elif goal.timeout_s > 0.0 and elapsed >= goal.timeout_s:
            self._end_goal('timeout', f'no arrival within {goal.timeout_s:g} s '
                           f'({self._last.phase}: {self._last.reason}); stopped')
            self._set_mode('idle', '')
        elif now - goal.feedback_s >= FEEDBACK_PERIOD_S or now < goal.feedback_s:
            goal.feedback_s = now
            goal.handle.publish_feedback(self._goal_feedback(goal, now))

    def _goal_feedback(self, goal: _Goal, now: float) -> FindObject.Feedback:
        feedback = FindObject.Feedback(phase=self._last.phase, reason=self._last.reason,
                                       elapsed_s=float(now - goal.started_s),
                                       visible_prob=math.nan, bearing_rad=math.nan,
                                       distance_m=math.nan, since_seen_s=-1.0)
        obs = self._observation
        if isinstance(obs, Observation):
            feedback.visible_prob = float(obs.visible_prob)
            feedback.bearing_rad = float(self._bearing(obs))
            feedback.distance_m = float(self._target_range(obs, now))
        memory = getattr(self._policy, 'target_memory', None)
        if memory is not None:
            feedback.since_seen_s = float(max(0.0, now - memory.seen_s))
        return feedback

    def _bearing(self, obs: Observation) -> float:
        return obs.expected_bearing(math.radians(self.get_parameter('hfov_deg').value))

    def _target_range(self, obs: Observation, now: float) -> float:
        """Return the target's range (scan or depth) at its bearing while it is seen, else NaN."""
        return self._target_fix(obs, now)[0]

    def _target_fix(self, obs: Observation, now: float
                    ) -> Tuple[float, Optional[Tuple[float, float, float]]]:
        """
        Return the target's range at its bearing while it is seen, and the pose it is from.

        From a fresh lidar scan (the pose: the newest odometry); else, with use_depth, from
        the depth image of the observation's frame (the pose: odometry at its stamp). NaN
        and None when the target is not seen or no range is known.
        """
        if obs.visible_prob < self.get_parameter('visible_threshold').value:
            return math.nan, None
        scan = self._fresh_lidar(now)
        if scan is not None:
            distance = float(scan.range_toward(np.array([self._bearing(obs)]))[0])
            if math.isfinite(distance) and distance > 0.0:
                return distance, self._pose(now)
            return math.nan, None
        depth = self._depth_of(obs.stamp_s, now)
        if depth is None:
            return math.nan, None
        distance = self._depth_range(depth, obs)
        return (distance, depth.pose) if math.isfinite(distance) and distance > 0.0 else \
            (math.nan, None)

    def _depth_range(self, depth: '_Depth', obs: Observation) -> float:
        """
        Return the depth's range at the target's bearing, masked to its image third.

        The third is the one the model's bearing answer puts most probability on; the
        columns are those within depth_target_half_width_deg of the expected bearing.
        """
        k = depth.intrinsics
        third = max(range(len(BEARINGS)), key=lambda i: obs.bearing_probs.get(BEARINGS[i], 0.0))
        edges = np.linspace(0, k.width, len(BEARINGS) + 1).round().astype(int)
        mask = np.zeros(depth.metres.shape, dtype=bool)
        mask[:, edges[third]:edges[third + 1]] = True     # left, centre, right thirds
        return range_at_bearing(
            depth.metres, k, depth.mount, self._bearing(obs),
            math.radians(self.get_parameter('depth_target_half_width_deg').value),
            min_height_m=self.get_parameter('depth_min_height').value,
            range_max_m=self.get_parameter('depth_range_max').value, mask=mask,
            pixel_step=self._depth_step(k))

    def _end_goal(self, outcome: str, message: str) -> None:
        goal, self._goal = self._goal, None
        if goal is not None:
            self._finish(goal, outcome, message, self.get_clock().now().nanoseconds * 1e-9)

    def _finish(self, goal: _Goal, outcome: str, message: str, now: float) -> None:
        result = FindObject.Result(success=outcome == 'arrived', outcome=outcome,
                                   message=message, elapsed_s=float(now - goal.started_s))
        if goal.target_pose is not None:
            result.target_pose, result.target_pose_known = goal.target_pose, True
        text = f'FindObject {goal.target or goal.handle.request.target!r}: {outcome}: {message}'
        # One call site per severity: rclpy refuses a severity change at the same call.
        if outcome == 'refused':
            self.get_logger().warning(text)
        else:
            self.get_logger().info(text)
        goal.done.set_result(result)

    def _on_odom(self, msg: Odometry) -> None:
        p, q = msg.pose.pose.position, msg.pose.pose.orientation
        yaw = math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))
        if all(math.isfinite(v) for v in (p.x, p.y, yaw)):
            self._odom = (self.get_clock().now().nanoseconds * 1e-9, (p.x, p.y, yaw))
            self._odom_frame = msg.header.frame_id or 'odom'
            self._odom_history.append(
                (Time.from_msg(msg.header.stamp).nanoseconds * 1e-9, (p.x, p.y, yaw)))

    def _on_scan(self, msg: LaserScan) -> None:
        """
        Keep the newest usable scan, with the odometry pose at its stamp.

        The map needs where the scan was taken; the robot may have turned since.
        """
        self._scans['received'] += 1
        ranges = np.asarray(msg.ranges, dtype=float)
        stamp = Time.from_msg(msg.header.stamp).nanoseconds * 1e-9
        problem = ''
        if not len(ranges) or not (math.isfinite(msg.angle_min) and
                                   math.isfinite(msg.angle_increment) and
                                   msg.angle_increment != 0.0):
            problem = 'no beams or no angles'
        elif not (math.isfinite(msg.range_max) and msg.range_max > 0.0):
            problem = f'range_max {msg.range_max}'
        else:
            mount, self._scan_frame_problem = self._scan_mount(msg)
            problem = self._scan_frame_problem
            if not problem and not self._odom_history:
                problem = 'no odometry yet'
        if problem:
            self._scans['refused'] += 1
            self.get_logger().warning(f'scan refused: {problem}', throttle_duration_sec=5.0)
            return
        _, pose = min(self._odom_history, key=lambda entry: abs(entry[0] - stamp))
        if mount is None:
            scan = Scan(float(msg.angle_min), float(msg.angle_increment), ranges,
                        float(msg.range_max), float(max(0.0, msg.range_min)), pose=pose)
        else:
            scan = scan_in_base(mount, ranges, float(msg.angle_min),
                                float(msg.angle_increment), float(msg.range_max),
                                float(max(0.0, msg.range_min)), pose=pose)
        self._scan = (self.get_clock().now().nanoseconds * 1e-9, scan)

    def _scan_mount(self, msg: LaserScan) -> Tuple[Optional[ScanMount], str]:
        """
        Return where the scan's frame sits on the base (None: it is the base), or why not.

        scan_frame's static scan_to_base first, then tf2 (base_frame <- frame at the scan's
        stamp, else the newest, as a static transform has) where it is installed.
        """
        frame, base = msg.header.frame_id, self._base_frame
        if frame == base:
            return None, ''
        fix = (f"set scan_frame: '{frame}' and scan_to_base: [x, y, yaw] (its pose on "
               f'{base}), or publish the scan in {base}')
        if not frame:
            return None, ("no frame_id: the scan's frame is unknown; set its header.frame_id "
                          f"({base}, or the lidar's frame with scan_frame and scan_to_base)")
        if frame == self._scan_frame:
            if self._scan_to_base_problem:
                return None, f"frame '{frame}': {self._scan_to_base_problem}"
            return self._scan_to_base, ''
        t, problem = self._transform_to_base(frame, msg.header.stamp, fix)
        if t is None:
            return None, problem
        p, q = t.transform.translation, t.transform.rotation
        try:
            return ScanMount.from_quaternion(p.x, p.y, q.x, q.y, q.z, q.w), ''
        except ValueError as error:
            return None, f"frame '{frame}': {error}"

    def _transform_to_base(self, frame: str, stamp, fix: str):
        """
        Return tf2's base_frame <- frame at stamp (else the newest), or None and why not.

        The newest serves a static transform, which has no time; fix says what the user
        can set instead.
        """
        base = self._base_frame
        if self._tf_buffer is None:
            return None, f"frame '{frame}' cannot be placed on {base} (no tf2 here): {fix}"
        try:
            try:
                return self._tf_buffer.lookup_transform(base, frame, Time.from_msg(stamp)), ''
            except tf2_ros.TransformException:
                return self._tf_buffer.lookup_transform(base, frame, Time()), ''
        except tf2_ros.TransformException as error:
            return None, f"frame '{frame}': no transform to {base} ({error}): publish it " \
                f'(robot_state_publisher, static_transform_publisher) or {fix}'

    def _fresh_lidar(self, now: float) -> Optional[Scan]:
        if self._scan is None or now - self._scan[0] > \
                self.get_parameter('scan_timeout_s').value:
            return None
        return self._scan[1]

    def _fresh_depth(self, now: float) -> Optional[_Depth]:
        if not self._depth_history or now - self._depth_history[-1].received_s > \
                self.get_parameter('depth_timeout_s').value:
            return None
        return self._depth_history[-1]

    def _fresh_scan(self, now: float) -> Optional[Scan]:
        """Return the scan the policy maps: a fresh lidar scan, else a fresh depth scan."""
        scan = self._fresh_lidar(now)
        if scan is None:
            depth = self._fresh_depth(now)
            scan = None if depth is None else depth.scan
        return scan

    def _depth_of(self, stamp_s: float, now: float) -> Optional[_Depth]:
        """Return the fresh depth image of the frame stamped stamp_s (within DEPTH_MATCH_S)."""
        if self._fresh_depth(now) is None:
            return None
        best = min(self._depth_history, key=lambda d: abs(d.stamp_s - stamp_s))
        return best if abs(best.stamp_s - stamp_s) <= DEPTH_MATCH_S else None

    def _depth_step(self, k: Intrinsics) -> int:
        step = self.get_parameter('depth_pixel_step').value
        return int(step) if step > 0 else max(1, int(math.ceil(k.width / 160.0)))

    def _on_depth_info(self, msg: CameraInfo) -> None:
        self._depth_info = msg

    def _on_depth(self, msg: Image) -> None:
        """
        Keep the newest usable depth image as metres and as a planar scan of the base.

        With the odometry pose at its stamp, as a lidar scan; refused (counted, reported)
        when its encoding is not depth, there is no camera_info of its size, its frame
        cannot be placed or there is no odometry yet.
        """
        self._depths['received'] += 1
        stamp = Time.from_msg(msg.header.stamp).nanoseconds * 1e-9
        problem, metres, intrinsics, mount = '', None, None, None
        try:
            metres = depth_to_metres(msg)
            intrinsics = self._depth_intrinsics(msg)
            mount, problem = self._depth_mount(msg)
        except (ImageError, ValueError) as error:
            problem = str(error)
        if not problem and not self._odom_history:
            problem = 'no odometry yet'
        self._depth_problem = problem
        if problem:
            self._depths['refused'] += 1
            self.get_logger().warning(f'depth image refused: {problem}',
                                      throttle_duration_sec=5.0)
            return
        _, pose = min(self._odom_history, key=lambda entry: abs(entry[0] - stamp))
        scan = depth_scan(metres, intrinsics, mount,
                          self.get_parameter('depth_range_max').value,
                          self.get_parameter('depth_min_height').value,
                          self.get_parameter('depth_max_height').value,
                          pixel_step=self._depth_step(intrinsics), pose=pose)
        self._depth_history.append(_Depth(self.get_clock().now().nanoseconds * 1e-9, stamp,
                                          pose, metres, intrinsics, mount, scan))

    def _depth_intrinsics(self, msg: Image) -> Intrinsics:
        """Return the depth camera's intrinsics from its camera_info; ValueError if unusable."""
        info = self._depth_info
        if info is None:
            raise ValueError('no camera_info on camera/depth/camera_info yet: the intrinsics '
                             'are unknown')
        if (info.width, info.height) != (msg.width, msg.height):
            raise ValueError(f'camera_info is for {info.width}x{info.height}, the depth image '
                             f'is {msg.width}x{msg.height}')
        return Intrinsics.from_k(info.k, int(info.width), int(info.height))

    def _depth_mount(self, msg: Image) -> Tuple[Optional[CameraMount], str]:
        """
        Return where the depth image's camera sits on the base, or why not.

        depth_camera_frame's static depth_camera_to_base first, then tf2 (base_frame <-
        frame at the image's stamp, else the newest), the frame taken as an optical frame.
        """
        frame, base = msg.header.frame_id, self._base_frame
        fix = (f"set depth_camera_frame: '{frame}' and depth_camera_to_base: "
               f'[x, y, z, roll, pitch, yaw] (its pose on {base})')
        if not frame:
            return None, ("no frame_id: the depth camera's frame is unknown; set its "
                          'header.frame_id (depth_camera_frame)')
        if frame == self._depth_frame:
            if self._depth_to_base_problem:
                return None, f"frame '{frame}': {self._depth_to_base_problem}"
            return self._depth_to_base, ''
        t, problem = self._transform_to_base(frame, msg.header.stamp, fix)
        if t is None:
            return None, problem
        p, q = t.transform.translation, t.transform.rotation
        try:
            return CameraMount.from_quaternion(p.x, p.y, p.z, q.x, q.y, q.z, q.w), ''
        except ValueError as error:
            return None, f"frame '{frame}': {error}"

    def _on_image(self, msg: Image) -> None:
        self._frame = msg                 # converted only when someone watches

    def _pose(self, now: float):
        """Return the newest odometry pose if fresh, else None (the policy dead-reckons)."""
        if self._odom is None or now - self._odom[0] > ODOM_TIMEOUT_S:
            return None
        return self._odom[1]

    # ---- perception ---------------------------------------------------------------------------
    def _request_observation(self, now: float) -> None:
        if self._pending is not None:
            if now - self._pending_since < self.get_parameter('request_timeout_s').value:
                return
            self._counts['observe_failures'] += 1
            self._counts['last_observe_error'] = 'observe call timed out'
            if not self._failure:     # vlm_node's own reason, when it comes, says more
                self._failure = ('vlm_node did not answer within request_timeout_s '
                                 f"({self.get_parameter('request_timeout_s').value:g} s)")
            self._pending = None
        if self._free_text:
            self._request_answer(now)
            return
        if not self._observe.service_is_ready():
            return
        target = self._policy.target if self._policy.mode != 'explore' else ''
        request = Observe.Request(target=target)
        if self._observation is not None:
            # Each frame once, as soon as it arrives: vlm_node holds the call until a
            # frame newer than the one we already acted on (decisions at camera rate).
            request.newer_than = self._observation_stamp
        future = self._observe.call_async(request)
        self._pending, self._pending_since = future, now
        future.add_done_callback(lambda f, t=target: self._on_observation(f, t))

    def _request_answer(self, now: float) -> None:
        """Send one free-text Ask with the baseline's prompt per decision (policy free_text)."""
        if not self._ask.service_is_ready():
            return
        prompt, budget = self._policy.prompt()
        future = self._ask.call_async(Ask.Request(question=prompt, max_new_tokens=budget))
        self._pending, self._pending_since = future, now
        key = (self._policy.mode, self._policy.target)
        future.add_done_callback(lambda f, k=key: self._on_answer(f, k))

    def _response(self, future):
        """Return the successful response of the call in flight, else None (failure counted)."""
        if future is not self._pending:
            self._late_failure(future)    # abandoned or superseded: only its reason counts
            return None
        self._pending = None
        try:
            response = future.result()
        except Exception as error:  # noqa: B902 - any failed call is a perception failure
            self._perception_failed(str(error))
            return None
        if not response.success:
            self._perception_failed(response.message)
            return None
        return response

    def _late_failure(self, future) -> None:
        """Keep the reason of a call that failed after it was given up (a hung server)."""
        try:
            response = future.result()
        except Exception:  # noqa: B902 - nothing more to learn from it
            return
        if not response.success and response.message:
            self._failure = response.message

    def _perception_failed(self, why: str) -> None:
        self._counts['observe_failures'] += 1
        self._counts['last_observe_error'] = why
        self._failure = why
        self.get_logger().warning(f'perception call failed: {why}', throttle_duration_sec=5.0)

    def _accept(self, perception, stamp, problem: str, latency: float) -> None:
        """
        Keep perception unless it is unfit (problem) or not newer than what we have.

        Unfit perception (NaN, a stamp from the future) is no perception at all: not
        acting on it lets the stale-perception stop apply.
        """
        if problem:
            self._counts['invalid_observations'] += 1
            self._counts['last_observe_error'] = problem
            self.get_logger().warning(f'observation refused: {problem}',
                                      throttle_duration_sec=5.0)
            return
        if self._observation is not None and perception.stamp_s <= self._observation.stamp_s:
            return                        # same or older frame: nothing new
        self._observation, self._observation_stamp = perception, stamp
        self._obs_latency = latency
        self._failure = ''
        self._counts['observations'] += 1
        # Act on it now rather than at the next control tick: frame-to-Twist latency is
        # then the inference time, and the next request goes out at once.
        self._tick()

    def _on_answer(self, future, key) -> None:
        response = self._response(future)
        if response is None or key != (self._policy.mode, self._policy.target):
            return
        stamp = Time.from_msg(response.frame_stamp).nanoseconds * 1e-9
        now = self.get_clock().now().nanoseconds * 1e-9
        problem = '' if math.isfinite(stamp) and stamp <= now + MAX_FUTURE_STAMP_S else \
            'answer frame stamp in the future'
        self._accept(Answer(stamp_s=stamp, answer=response.answer), response.frame_stamp,
                     problem, response.latency_s)

    def _on_observation(self, future, target: str) -> None:
        response = self._response(future)
        if response is None or \
                target != (self._policy.target if self._policy.mode != 'explore' else ''):
            return
        o = response.observation
        if o.model_name != self._model_name:
            if self._model_name:           # vlm_node serves another model now: ask again
                self._vocabulary = None
                self._ask_vocabulary()
            self._model_name = o.model_name
        observation = Observation(
            target=o.target, stamp_s=Time.from_msg(o.header.stamp).nanoseconds * 1e-9,
            visible_prob=o.visible_prob,
            bearing_probs=dict(zip(o.bearing_labels, o.bearing_probs)),
            distance_probs=dict(zip(o.distance_labels, o.distance_probs)),
            path_clear_prob=o.path_clear_prob)
        problem = observation_problem(observation, self.get_clock().now().nanoseconds * 1e-9,
                                      MAX_FUTURE_STAMP_S)
        self._accept(observation, o.header.stamp, problem, o.inference_latency_s)

    # ---- control --------------------------------------------------------------------------
    def _tick(self) -> None:
        now = self.get_clock().now().nanoseconds * 1e-9
        mono = time.monotonic()
        # Acceleration limits hold in the robot's time: simulated time under use_sim_time
        # (a simulator faster than real time), else the steady clock.
        tick = now if self.get_parameter('use_sim_time').value else mono
        dt = 0.0 if self._last_tick is None else min(1.0, max(0.0, tick - self._last_tick))
        self._last_tick = tick
        if self._vocabulary_new:
            self._recheck_target()
        self._serve_goals(now)
        if self._policy.mode == 'idle':
            return
        self._request_observation(mono)
        obs = self._observation
        age = math.inf if obs is None else now - obs.stamp_s
        timeout = self.get_parameter('perception_timeout_s').value
        if age > timeout:
            linear, angular = self._stale_stop(obs, age, timeout)
        else:
            self._stale = False
            self._last = self._policy.decide(obs, now) if self._free_text else \
                self._policy.decide(obs, now, self._pose(now), self._fresh_scan(now))
            self._publish_target_pose(obs, now)
            if self._last.arrived:      # stop where the target was judged near: no coasting
                linear, angular = self._limiter.stop()
            else:
                linear, angular = self._limiter.limit(self._last.linear, self._last.angular,
                                                      dt)
            # Checked again as it goes out: a process starved between the clock reading and
            # here (seen: 0.8 s on a loaded machine) must not send motion decided on
            # perception that has gone stale meanwhile.
            age = self.get_clock().now().nanoseconds * 1e-9 - obs.stamp_s
            if (linear or angular) and age > timeout:
                linear, angular = self._stale_stop(obs, age, timeout)
        self._publish_twist(linear, angular)
        self._publish_state(linear, angular, age)
        self._goal_progress(now)

    def _stale_stop(self, obs: Optional[Union[Observation, Answer]], age: float,
                    timeout: float) -> Tuple[float, float]:
        if not self._stale:
            self._counts['stale_stops'] += 1
            self.get_logger().warning(
                'perception stale ' + ('(none yet)' if obs is None else f'({age:.2f} s)') +
                ': stopping', throttle_duration_sec=2.0)
        self._stale = True
        why = 'no observation yet' if obs is None else \
            f'newest observation is {age:.2f} s old (> {timeout:.2f} s)'
        if self._failure:
            why += f'; perception fails: {self._failure}'
        self._last = Decision(0.0, 0.0, 'stale', why)
        return self._limiter.stop()

    def _publish_twist(self, linear: float, angular: float) -> None:
        """Publish a command: the one way anything here moves or stops the robot."""
        twist = Twist()
        twist.linear.x, twist.angular.z = float(linear), float(angular)
        if self._stamped:
            stamped = TwistStamped(twist=twist)
            stamped.header.stamp = self.get_clock().now().to_msg()
            stamped.header.frame_id = self._base_frame
            self._cmd_pub.publish(stamped)
        else:
            self._cmd_pub.publish(twist)

    def _publish_target_pose(self, obs, now: float) -> None:
        """Publish the target's pose once per observation where it is seen with a range."""
        if not isinstance(obs, Observation) or self._observation_stamp is None:
            return
        if self._target_pose_stamp is self._observation_stamp:
            # out already; a goal for the same target begun since this observation (one
            # that arrives at once, the robot already there) takes it as its own
            goal, last = self._goal, self._target_pose_last
            if goal is not None and goal.target_pose is None and last is not None and \
                    last[0] == obs.target:
                goal.target_pose = last[1]
            return
        distance, robot = self._target_fix(obs, now)
        if robot is None:
            return
        pose = target_pose(robot, self._bearing(obs), distance)
        if pose is None:
            return
        self._target_pose_stamp = self._observation_stamp
        msg = PoseStamped()
        msg.header.stamp = self._observation_stamp
        msg.header.frame_id = self._target_pose_frame
        msg.pose.position.x, msg.pose.position.y = float(pose[0]), float(pose[1])
        q = msg.pose.orientation
        q.x, q.y, q.z, q.w = yaw_quaternion(pose[2])
        self._target_pose_pub.publish(msg)
        self._target_pose_last = (obs.target, msg)
        if self._goal is not None:
            self._goal.target_pose = msg

    def _publish_state(self, linear: float, angular: float, age: float) -> None:
        state = NavigatorState(mode=self._policy.mode, target=self._policy.target,
                               phase=self._last.phase, reason=self._last.reason,
                               linear_x=float(linear), angular_z=float(angular),
                               perception_age_s=float(age if math.isfinite(age) else -1.0),
                               stale=self._stale)
        if self._observation_stamp is not None:
            state.frame_stamp = self._observation_stamp
        state.stamp = self.get_clock().now().to_msg()
        self._state_pub.publish(state)

    # ---- what people see --------------------------------------------------------------------
    def _publish_visualization(self) -> None:
        if self._debug_pub.get_subscription_count() > 0 and self._frame is not None:
            self._publish_debug_image()
        now = self.get_clock().now()
        if self._marker_pub.get_subscription_count() > 0:
            self._marker_pub.publish(policy_markers(
                None if self._free_text else self._policy, self._observation,
                self._odom_frame, now.to_msg(), now.nanoseconds * 1e-9))
        if self._grid_pub is not None and self._grid_pub.get_subscription_count() > 0:
            grid = scan_map_grid(self._policy.scan_map, self._odom_frame, now.to_msg())
            if grid is not None:
                self._grid_pub.publish(grid)

    def _publish_debug_image(self) -> None:
        try:
            rgb = image_to_rgb(self._frame)
        except ValueError as error:
            self.get_logger().warning(f'debug image: {error}', throttle_duration_sec=10.0)
            return
        obs = self._observation if isinstance(self._observation, Observation) else None
        last = self._last
        picture = draw_debug(rgb, obs, last.phase, last.reason, self._limiter.linear,
                             self._limiter.angular, self._policy.target,
                             math.radians(self.get_parameter('hfov_deg').value))
        self._debug_pub.publish(rgb_to_image(picture, self._frame.header.stamp,
                                             self._frame.header.frame_id))

    def _publish_diagnostics(self) -> None:
        values = dict(self._counts, mode=self._policy.mode, target=self._policy.target,
                      phase=self._last.phase, last_inference_latency_s=f'{self._obs_latency:.3f}',
                      # since the last goal: driving forward with odometry standing still
                      odometry_stalls=self._policy.stalls,
                      scans_received=self._scans['received'],
                      scans_refused=self._scans['refused'])
        if self._use_depth:
            values.update(depth_received=self._depths['received'],
                          depth_refused=self._depths['refused'],
                          depth_camera_info=self._depth_info is not None)
        now = self.get_clock().now().nanoseconds * 1e-9
        if self._scan is not None:
            values['scan_age_s'] = f'{now - self._scan[0]:.2f}'
        if self._scan_frame_problem:
            values['scan_refused_because'] = self._scan_frame_problem
        if self._depth_history:
            values['depth_age_s'] = f'{now - self._depth_history[-1].received_s:.2f}'
        if self._depth_problem:
            values['depth_refused_because'] = self._depth_problem
        scan_lost = self._scan is not None and self._fresh_lidar(now) is None
        depth_lost = self._use_depth and bool(self._depth_history) and \
            self._fresh_depth(now) is None
        if self._policy.mode != 'idle' and self._stale:
            level, message = WARN, f'stopped: {self._last.reason}'
        elif self._scan_frame_problem:
            level, message = WARN, (f'{self._policy.mode}: {self._last.phase}; scan refused: '
                                    f'{self._scan_frame_problem}')
        elif self._use_depth and self._depth_problem:
            level, message = WARN, (f'{self._policy.mode}: {self._last.phase}; depth image '
                                    f'refused: {self._depth_problem}')
        elif (scan_lost or depth_lost) and self._fresh_scan(now) is None and \
                self._policy.mode != 'idle':
            level, message = WARN, (f'{self._policy.mode}: {self._last.phase}; '
                                    f"{'scan' if scan_lost else 'depth'} stale, driving by "
                                    'the camera alone')
        else:
            level, message = OK, f'{self._policy.mode}: {self._last.phase}'
        self._diagnostics.publish(level, message, values)

    def destroy_node(self):
        # A node stopped while it is being built (Ctrl-C at start-up) has no action server
        # or publisher yet: the session's teardown still destroys it.
        if hasattr(self, '_action'):
            self._publish_twist(0.0, 0.0)     # leave the robot stopped
            self._end_goal('failed', 'navigator_node shut down')
            self._action.destroy()
        return super().destroy_node()


def main(args=None):
    with ros_session(args=args):
        rclpy.spin(NavigatorNode())


if __name__ == '__main__':
    main()
