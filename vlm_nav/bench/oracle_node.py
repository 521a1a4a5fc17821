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
Oracle perception for benchmarks: Observe answered from the ground truth, not a model.

The node serves the vlm_node's Observe service from the simulator's ground truth
(sim/ground_truth).

BENCHMARK ONLY. It never runs on a robot: a robot has no ground truth, and nothing in a
bringup profile or launch file starts it. `vlm-nav bench nav` uses it to measure the
navigator with perfect perception (the upper bound of what the policy can do).

Answers are certain (probabilities 1/0) from the newest truth message: visible, the
image third of the target's visible pixels, near (within 1 m, centre to centre), and
whether the path ahead is clear. The frame stamp is the truth message's stamp, so the
navigator's stale-perception stop works as with the real model.
"""

import json
from typing import Optional

import rclpy
from rclpy.node import Node
from std_msgs.msg import String

from vlm_nav.perception.vocabulary import BEARINGS, DISTANCES
from vlm_nav.ros.session import ros_session
from vlm_nav_interfaces.msg import TargetObservation
from vlm_nav_interfaces.srv import Observe


def oracle_observation(truth: dict, target: str) -> TargetObservation:
    """Build a TargetObservation with certain answers from one ground-truth message."""
    obs = TargetObservation(target=target, model_name='oracle (ground truth)')
    stamp = float(truth['stamp'])
    obs.header.stamp.sec = int(stamp)
    obs.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9)) % 10**9
    obs.header.frame_id = 'camera'
    obs.path_clear_prob = 1.0 if truth.get('path_clear', True) else 0.0
    if target:
        seen = [o for o in truth.get('objects', []) if o['label'] == target and o['visible']]
        obs.bearing_labels, obs.distance_labels = list(BEARINGS), list(DISTANCES)
        if seen:
            o = min(seen, key=lambda item: item['distance_m'])
            obs.visible_prob = 1.0
            obs.bearing_probs = [1.0 if b == o['image_bearing'] else 0.0 for b in BEARINGS]
            obs.distance_probs = [1.0 if d == o['distance'] else 0.0 for d in DISTANCES]
        else:
            obs.visible_prob = 0.0
            obs.bearing_probs = [1.0 / 3.0] * 3
            obs.distance_probs = [0.5, 0.5]
    return obs


class OracleNode(Node):

    def __init__(self, **kwargs):
        super().__init__('oracle_node', **kwargs)
        self._truth: Optional[dict] = None
        self.requests = 0
        self.create_subscription(String, 'sim/ground_truth', self._on_truth, 10)
        self.create_service(Observe, 'vlm_nav/observe', self._on_observe)
        self.get_logger().warning('oracle perception from sim/ground_truth: benchmarks only, '
                                  'never on a robot')

    def _on_truth(self, msg: String) -> None:
        try:
            self._truth = json.loads(msg.data)
        except ValueError as error:
            self.get_logger().warning(f'bad ground truth: {error}', throttle_duration_sec=5.0)

    def _on_observe(self, request: Observe.Request,
                    response: Observe.Response) -> Observe.Response:
        self.requests += 1
        if self._truth is None:
            response.success, response.message = False, 'no ground truth received yet'
            return response
        response.observation = oracle_observation(self._truth, request.target.strip())
        response.success = True
        return response


def main(args=None):
    with ros_session(args=args):
        rclpy.spin(OracleNode())


if __name__ == '__main__':
    main()
