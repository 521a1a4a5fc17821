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
ROS 2 node around vlm_nav.sim: cmd_vel in; camera, depth, scan, odom, collisions, truth out.

No TF is published: tf2_msgs is not on PyPI. odom carries the robot pose
(odom == world frame, perfect odometry); the camera sits at base_link's origin,
looking along +x, at the layout's camera height, pitched down by its pitch (logged at
start and reported on /diagnostics as camera_to_base, what a navigator's
depth_camera_to_base takes). The depth image is the colour render's depth buffer:
aligned with the colour image pixel for pixel, same stamp, frame and intrinsics.
"""

import json
import math
from typing import Optional

from builtin_interfaces.msg import Time
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
import numpy as np
import rclpy
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock as ClockMsg
from sensor_msgs.msg import CameraInfo, Image, LaserScan
from std_msgs.msg import String, UInt32

from vlm_nav.ros.compat import node_scope
from vlm_nav.ros.diagnostics import DiagnosticsPublisher, OK
from vlm_nav.ros.image import metres_to_depth_image
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session
from vlm_nav.sim.layout import make_layout
from vlm_nav.sim.world import (camera_to_base, DEPTH_RANGE_M, DepthFaults, SCAN_BEAMS,
                               SCAN_RANGE_M, World)


class SimNode(Node):

    def __init__(self, **kwargs) -> None:
        super().__init__('sim_node', **kwargs)
        seed = declare(
            self, 'seed', 0,
            'Layout seed (vlm_nav.sim.make_layout); also picks a random start.', read_only=True)
        self._image_size = declare(
            self, 'image_size', 96, 'Square camera image side, pixels.', 16, 1024,
            read_only=True)
        self._hfov = math.radians(declare(
            self, 'hfov_deg', 60.0, 'Camera horizontal field of view, degrees.', 10.0, 150.0,
            read_only=True))
        self._camera_dt = 1.0 / declare(
            self, 'rate_hz', 10.0, 'Camera (and ground truth) rate, Hz of simulated time.',
            0.1, 100.0, read_only=True)
        self._physics_dt = 1.0 / declare(
            self, 'physics_rate_hz', 30.0, 'Kinematics and odom rate, Hz of simulated time.',
            1.0, 1000.0, read_only=True)
        rtf = declare(
            self, 'real_time_factor', 1.0,
            'Simulated seconds per wall second (>1: faster than real time; use with '
            'publish_clock so other nodes follow).', 0.01, 100.0, read_only=True)
        self._publish_clock = declare(
            self, 'publish_clock', False,
            'Publish /clock (simulated time, from start_time_s) and stamp with it.',
            read_only=True)
        self._sim_time = float(declare(
            self, 'start_time_s', 0.0,
            'Simulated time at start (with publish_clock): lets a benchmark run episodes one '
            'after another without the clock going backwards.', 0.0, 1.0e9, read_only=True))
        self._frame_id = declare(
            self, 'frame_id', 'camera', 'frame_id of image and camera_info.', read_only=True)
        self._odom_frame = declare(
            self, 'odom_frame_id', 'odom', 'Odometry frame (equal to the world frame).',
            read_only=True)
        self._base_frame = declare(
            self, 'base_frame_id', 'base_link', 'Robot frame, child of odom.', read_only=True)
        # An empty default would be typed as a byte array; declare the type instead
        # (unset = random start). Give floats on the command line: [1.0, 2.0, 0.0].
        start = declare(
            self, 'start_pose', Parameter.Type.DOUBLE_ARRAY,
            '[x, y, yaw] start in the world frame; unset or empty: a random free pose facing '
            'open space, chosen from seed.', read_only=True)
        declare(self, 'cmd_vel_timeout_s', 0.5,
                'Stop the robot when no cmd_vel came for this long (sim time).', 0.0, 60.0)
        publish_scan = declare(
            self, 'publish_scan', True,
            'Publish scan (sensor_msgs/LaserScan) with every camera frame: a planar lidar at '
            'base_link, beams all round.', read_only=True)
        self._scan_beams = declare(
            self, 'scan_beams', SCAN_BEAMS, 'Beams per scan, evenly spaced from -pi.', 8, 4096,
            read_only=True)
        self._scan_range = declare(
            self, 'scan_range_max', SCAN_RANGE_M,
            'Lidar range, metres; farther: no return (inf, REP 117).', 0.5, 100.0,
            read_only=True)
        publish_depth = declare(
            self, 'publish_depth', True,
            'Publish camera/depth/image_raw and camera/depth/camera_info with every camera '
            'frame: the depth of the colour render, aligned with it (same stamp, frame_id and '
            'intrinsics), REP 118.', read_only=True)
        self._depth_encoding = declare(
            self, 'depth_encoding', '32FC1',
            'Depth image encoding: 32FC1 (float metres, invalid NaN) or 16UC1 (millimetres, '
            'invalid 0).', choices=['32FC1', '16UC1'], read_only=True)
        if self._depth_encoding not in ('32FC1', '16UC1'):
            raise ValueError(f'depth_encoding {self._depth_encoding!r}: 32FC1 or 16UC1')
        self._depth_range = declare(
            self, 'depth_max_range', DEPTH_RANGE_M,
            'Depth camera range, metres; farther (and nothing hit): invalid.', 0.2, 25.0,
            read_only=True)
        self._depth_faults = DepthFaults(
            noise_k=declare(
                self, 'depth_noise_k', 0.0,
                'Depth noise: Gaussian, sigma = k * z^2 metres (as a stereo camera has; '
                'RealSense D435 about 0.002-0.005); 0 = none.', 0.0, 1.0, read_only=True),
            dark_dropout=declare(
                self, 'depth_dark_dropout', 0.0,
                'Probability that a pixel darker than depth_dark_threshold reads invalid.',
                0.0, 1.0, read_only=True),
            dark_threshold=declare(
                self, 'depth_dark_threshold', 0.15,
                'Mean RGB (0-1) below which a pixel is dark for depth_dark_dropout.', 0.0, 1.0,
                read_only=True),
            edge_dropout=declare(
                self, 'depth_edge_dropout', 0.0,
                'Probability that a pixel beside a depth jump (edges, thin things) reads '
                'invalid.', 0.0, 1.0, read_only=True),
            edge_jump_m=declare(
                self, 'depth_edge_jump_m', 0.1,
                'A depth jump between neighbouring pixels larger than this is an edge.',
                0.001, 10.0, read_only=True),
            min_range_m=declare(
                self, 'depth_min_range', 0.0,
                'Depth camera minimum range, metres: nearer reads invalid; 0 = none.',
                0.0, 5.0, read_only=True),
            seed=int(seed))
        self._publish_truth = declare(
            self, 'publish_ground_truth', True,
            'Publish sim/ground_truth (tests and benchmarks only).', read_only=True)

        self._world = World(make_layout(seed), image_size=self._image_size,
                            hfov_deg=math.degrees(self._hfov))
        if start is not None and len(start) > 0:
            if len(start) != 3:
                raise ValueError(f'start_pose must be [x, y, yaw], got {list(start)}')
            self._world.reset_robot(*start)
        else:
            self._world.reset_robot(*self._world.random_free_pose(
                np.random.default_rng(seed), clear_ahead_m=1.0))
        if self._world.collides_at(*self._world.robot_pose[:2]):
            self.get_logger().warning('start_pose overlaps geometry; the robot may be stuck')

        self._next_camera = self._sim_time
        self._cmd = (0.0, 0.0)
        self._last_cmd_time: Optional[float] = None
        self._velocity = (0.0, 0.0)

        self._image_pub = self.create_publisher(Image, 'camera/image_raw',
                                                qos_profile_sensor_data)
        self._info_pub = self.create_publisher(CameraInfo, 'camera/camera_info',
                                               qos_profile_sensor_data)
        self._depth_pub = self._depth_info_pub = None
        if publish_depth:
            self._depth_pub = self.create_publisher(Image, 'camera/depth/image_raw',
                                                    qos_profile_sensor_data)
            self._depth_info_pub = self.create_publisher(
                CameraInfo, 'camera/depth/camera_info', qos_profile_sensor_data)
        self._odom_pub = self.create_publisher(Odometry, 'odom', 10)
        self._scan_pub = None
        if publish_scan:
            self._scan_pub = self.create_publisher(LaserScan, 'scan', qos_profile_sensor_data)
        self._collisions_pub = self.create_publisher(UInt32, 'sim/collisions', 10)
        self._truth_pub = self.create_publisher(String, 'sim/ground_truth', 10)
        self._clock_pub = None
        if self._publish_clock:
            if self.get_parameter('use_sim_time').value:
                self.get_logger().warning('use_sim_time is true on the node that publishes '
                                          '/clock; stamps still come from the simulation')
            self._clock_pub = self.create_publisher(
                ClockMsg, '/clock', QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._cmd_sub = self.create_subscription(
            Twist, 'cmd_vel', self.cmd_vel_callback,
            QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE))
        self._camera_info = self._make_camera_info()
        # The simulation drives time: step on a steady (wall) clock so use_sim_time
        # cannot stall it; one step is physics_dt of simulated time.
        self._timer = self.create_timer(self._physics_dt / rtf, self.physics_callback,
                                        clock=Clock(clock_type=ClockType.STEADY_TIME))
        self._frames = 0
        self._steps = 0
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_timer(1.0, self._publish_diagnostics,
                          clock=Clock(clock_type=ClockType.STEADY_TIME))
        x, y, yaw = self._world.robot_pose
        self._camera_to_base = camera_to_base(self._world.layout)
        self.get_logger().info(
            f'layout seed {seed}: {self._world.layout.width:.1f} x '
            f'{self._world.layout.depth:.1f} m, objects {self._world.layout.labels}; '
            f'robot at ({x:.2f}, {y:.2f}, {yaw:.2f}); camera_to_base '
            f'{self._camera_to_base_text()}')

    def _camera_to_base_text(self) -> str:
        return '[' + ', '.join(f'{v:.4f}' for v in self._camera_to_base) + ']'

    def cmd_vel_callback(self, msg: Twist) -> None:
        self._cmd = (float(msg.linear.x), float(msg.angular.z))
        self._last_cmd_time = self._sim_time

    def physics_callback(self) -> None:
        timeout = self.get_parameter('cmd_vel_timeout_s').value
        v, w = self._cmd
        if self._last_cmd_time is None or self._sim_time - self._last_cmd_time > timeout:
            v, w = 0.0, 0.0
        blocked = self._world.step(v, w, self._physics_dt)
        self._steps += 1
        self._velocity = (0.0 if blocked else v, w)
        self._sim_time += self._physics_dt
        stamp = self._stamp()
        if self._clock_pub is not None:
            self._clock_pub.publish(ClockMsg(clock=stamp))
        self._publish_odom(stamp)
        # Small epsilon: float sums of physics_dt must not skip a camera frame.
        if self._sim_time + 1e-9 >= self._next_camera:
            self._next_camera += self._camera_dt
            self._publish_camera(stamp)

    def _publish_diagnostics(self) -> None:
        x, y, yaw = self._world.robot_pose
        self._diagnostics.publish(OK, 'simulating', {
            'sim_time_s': f'{self._sim_time:.2f}', 'physics_steps': self._steps,
            'frames': self._frames, 'collisions': self._world.collisions,
            'blocked_steps': self._world.blocked_steps,
            'pose': f'{x:.2f} {y:.2f} {yaw:.2f}',
            'camera_to_base': self._camera_to_base_text()})

    def _stamp(self) -> Time:
        if self._publish_clock:
            sec = int(self._sim_time)
            return Time(sec=sec, nanosec=int(round((self._sim_time - sec) * 1e9)) % 10**9)
        return self.get_clock().now().to_msg()

    def _publish_odom(self, stamp: Time) -> None:
        x, y, yaw = self._world.robot_pose
        msg = Odometry()
        msg.header.stamp = stamp
        msg.header.frame_id = self._odom_frame
        msg.child_frame_id = self._base_frame
        msg.pose.pose.position.x = x
        msg.pose.pose.position.y = y
        msg.pose.pose.orientation.z = math.sin(yaw / 2.0)
        msg.pose.pose.orientation.w = math.cos(yaw / 2.0)
        msg.twist.twist.linear.x = self._velocity[0]
        msg.twist.twist.angular.z = self._velocity[1]
        self._odom_pub.publish(msg)

    def _publish_camera(self, stamp: Time) -> None:
        if self._depth_pub is not None:
            image, depth = self._world.render_rgbd(self._depth_range, self._depth_faults)
        else:
            image, depth = self._world.render(), None
        self._frames += 1
        n = self._image_size
        msg = Image()
        msg.header.stamp = stamp
        msg.header.frame_id = self._frame_id
        msg.height = n
        msg.width = n
        msg.encoding = 'rgb8'
        msg.step = 3 * n
        msg.data = image.tobytes()   # bytes: assigning a numpy array is ~500x slower
        self._image_pub.publish(msg)
        self._camera_info.header.stamp = stamp
        self._info_pub.publish(self._camera_info)
        if depth is not None:     # camera_info first: a navigator needs it for the image
            self._depth_info_pub.publish(self._camera_info)
            self._depth_pub.publish(metres_to_depth_image(depth, stamp, self._frame_id,
                                                          self._depth_encoding))
        self._collisions_pub.publish(UInt32(data=self._world.collisions))
        if self._scan_pub is not None:
            self._publish_scan(stamp)
        if self._publish_truth:
            self._truth_pub.publish(String(data=self._truth_json(stamp)))

    def _publish_scan(self, stamp: Time) -> None:
        n = self._scan_beams
        msg = LaserScan()
        msg.header.stamp = stamp
        msg.header.frame_id = self._base_frame
        msg.angle_min = -math.pi
        msg.angle_increment = 2.0 * math.pi / n
        msg.angle_max = msg.angle_min + (n - 1) * msg.angle_increment
        msg.scan_time = self._camera_dt
        msg.range_min = 0.0
        msg.range_max = float(self._scan_range)
        msg.ranges = self._world.scan(n, self._scan_range).astype(np.float32).tolist()
        self._scan_pub.publish(msg)

    def _truth_json(self, stamp: Time) -> str:
        # For tests and benchmarks only: a navigator must never subscribe to this.
        x, y, yaw = self._world.robot_pose
        return json.dumps({
            'stamp': stamp.sec + stamp.nanosec * 1e-9,
            'seed': self._world.layout.seed,
            'robot': {'x': x, 'y': y, 'yaw': yaw},
            'collisions': self._world.collisions,
            'path_clear': self._world.path_clear(),
            'objects': [t.to_dict() for t in self._world.ground_truth()],
        })

    def _make_camera_info(self) -> CameraInfo:
        n = self._image_size
        f = (n / 2.0) / math.tan(self._hfov / 2.0)
        c = (n - 1) / 2.0
        info = CameraInfo()
        info.header.frame_id = self._frame_id
        info.height = n
        info.width = n
        info.distortion_model = 'plumb_bob'
        info.d = [0.0] * 5
        info.k = [f, 0.0, c, 0.0, f, c, 0.0, 0.0, 1.0]
        info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
        info.p = [f, 0.0, c, 0.0, 0.0, f, c, 0.0, 0.0, 0.0, 1.0, 0.0]
        return info

    def destroy_node(self) -> None:
        self._world.close()
        super().destroy_node()


def main(args=None):
    with ros_session(args=args):
        with node_scope(SimNode()) as node:
            rclpy.spin(node)


if __name__ == '__main__':
    main()
