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
Record the small labelled bag the offline-evaluation test replays (test/data/sim_turn).

    python test/data/make_sim_bag.py [--out test/data/sim_turn]

sim_node (layout seed 2, 96 px frames at 2 Hz, ground truth on) and the recorder run as
processes, as `vlm-nav bringup` starts nodes; this script turns the robot in place beside
the blue ball so objects pass through every third of the image, near and far.
Camera frames, sim/ground_truth and cmd_vel are recorded (about 600 kB).
"""

import argparse
import os
import random
import shutil
import sys
import time

from geometry_msgs.msg import Twist
import rclpy

from vlm_nav.bringup.profiles import default_params_file, NodeSpec
from vlm_nav.bringup.supervisor import Stack

TOPICS = ['camera/image_raw', 'sim/ground_truth', 'cmd_vel']


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', default=os.path.join(os.path.dirname(__file__), 'sim_turn'))
    parser.add_argument('--seconds', type=float, default=9.0)
    args = parser.parse_args(argv)
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    specs = [
        NodeSpec('recorder', 'recorder', {'output': args.out, 'topics': TOPICS,
                                          'discovery_period_s': 0.1}),
        NodeSpec('sim_node', 'sim_node', {'seed': 2, 'image_size': 96, 'rate_hz': 2.0,
                                          'start_pose': [1.5, 0.6, 0.0]}),
    ]
    rclpy.init()
    node = rclpy.create_node('sim_bag_driver')
    publisher = node.create_publisher(Twist, 'cmd_vel', 10)
    with Stack(specs, default_params_file(), echo=True):
        # Wait for the sim and the recorder to see each other, then turn for `seconds`.
        deadline = time.monotonic() + 30.0
        while not node.count_subscribers('cmd_vel') and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        twist = Twist()
        twist.angular.z = 0.75
        end = time.monotonic() + args.seconds
        while time.monotonic() < end:
            publisher.publish(twist)
            time.sleep(0.1)
        publisher.publish(Twist())
        time.sleep(0.5)
    node.destroy_node()
    rclpy.shutdown()
    size = sum(os.path.getsize(os.path.join(args.out, f)) for f in os.listdir(args.out))
    print(f'wrote {args.out}: {size / 1e3:.0f} kB')
    return 0


if __name__ == '__main__':
    sys.exit(main())
