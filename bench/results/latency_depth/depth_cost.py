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
What the navigator's depth path costs per frame, in one process (no ROS, no model).

The work navigator_node does for each depth image (the message to metres, the virtual
scan) and for each decision with a scan (the map update and the policy), timed for the
simulator's 96x96 depth image, a 640x480 one (a RealSense's, decimated as the navigator
does by default: every 4th pixel) and, beside them, the simulator's 180-beam lidar scan.
Prints one JSON object.
"""

import json
import math
import sys
import time

from builtin_interfaces.msg import Time
import cv2
import numpy as np

from vlm_nav.nav.depth_scan import depth_scan, Intrinsics
from vlm_nav.nav.policy import NavigationPolicy
from vlm_nav.nav.scan_map import Scan
from vlm_nav.perception.vocabulary import Observation
from vlm_nav.ros.image import depth_to_metres, metres_to_depth_image
from vlm_nav.sim import make_layout, World
from vlm_nav.sim.world import DEPTH_RANGE_M, SCAN_BEAMS, SCAN_RANGE_M


def timed(fn, repeat):
    """Return the ms of one call: median of repeat calls (the machine is shared)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3)


def policy_ms(world, scans, repeat):
    """Return the median and p95 ms of a searching policy's decision fed these scans."""
    policy = NavigationPolicy()
    policy.reset('search', 'red ball')
    obs = Observation(target='red ball', stamp_s=0.0, visible_prob=0.05,
                      bearing_probs={'left': 0.3, 'center': 0.4, 'right': 0.3},
                      distance_probs={'near': 0.1, 'far': 0.9}, path_clear_prob=0.9)
    pose = tuple(world.robot_pose)
    for scan in scans[:3]:
        policy.decide(obs, 0.0, pose, scan)
    times = []
    for i in range(repeat):
        obs.stamp_s = 0.1 * (i + 1)
        start = time.perf_counter()
        policy.decide(obs, obs.stamp_s, pose, scans[i % len(scans)])
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1e3), float(np.percentile(np.array(times) * 1e3, 95))


def main() -> int:
    repeat = 100
    world = World(make_layout(3000000))
    rng = np.random.default_rng(0)
    world.reset_robot(*world.random_free_pose(rng, clear_ahead_m=1.0))
    _, depth = world.render_rgbd()
    k, mount = world.camera_intrinsics(), world.camera_mount()
    big = cv2.resize(np.nan_to_num(depth, nan=0.0), (640, 480),
                     interpolation=cv2.INTER_NEAREST)
    big_k = Intrinsics.from_hfov(640, 480, k.hfov_rad)
    out = {}
    for name, image, intrinsics, step in (('sim 96x96', depth, k, 1),
                                          ('640x480, every 4th pixel', big, big_k, 4)):
        for encoding in ('32FC1', '16UC1'):
            msg = metres_to_depth_image(image, Time(), 'camera', encoding)
            out[f'{name} {encoding}: to metres ms'] = round(
                timed(lambda m=msg: depth_to_metres(m), repeat), 2)
        metres = depth_to_metres(metres_to_depth_image(image, Time(), 'camera', '32FC1'))
        out[f'{name}: depth_scan ms'] = round(timed(
            lambda m=metres, i=intrinsics, s=step: depth_scan(m, i, mount, DEPTH_RANGE_M,
                                                              pixel_step=s), repeat), 2)
    depth_scans, lidar_scans = [], []
    for _ in range(12):
        world.reset_robot(*world.random_free_pose(rng, clear_ahead_m=0.5))
        _, d = world.render_rgbd()
        pose = tuple(world.robot_pose)
        depth_scans.append(depth_scan(d, k, mount, DEPTH_RANGE_M, pose=pose))
        lidar_scans.append(Scan(-math.pi, 2 * math.pi / SCAN_BEAMS,
                                world.scan(SCAN_BEAMS, SCAN_RANGE_M), SCAN_RANGE_M, pose=pose))
    for name, scans in (('lidar 180 beams', lidar_scans), ('depth', depth_scans)):
        median, p95 = policy_ms(world, scans, repeat)
        out[f'policy decision with {name}: median ms'] = round(median, 2)
        out[f'policy decision with {name}: p95 ms'] = round(p95, 2)
    world.close()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == '__main__':
    sys.exit(main())
