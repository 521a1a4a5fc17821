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
Run a bringup profile's nodes in one process on one executor.

This is the rclpy analogue of component composition: no DDS hop between camera and
model, one Python runtime.

    python -m vlm_nav.bringup.composed sim --seed 5 --target 'red ball'
    python -m vlm_nav.bringup.composed replay --bag test/data/sim_turn
"""

import argparse
import importlib
import sys

from rclpy.executors import MultiThreadedExecutor
from rclpy.parameter import Parameter

from vlm_nav.bringup.profiles import default_params_file, PROFILE_ARGUMENTS, profile_nodes
from vlm_nav.models.served import is_served_spec
from vlm_nav.ros.session import ros_session, spin_until_shutdown

# executable -> class name in vlm_nav.<executable>
NODE_CLASSES = {
    'camera_node': 'CameraNode', 'sim_node': 'SimNode', 'bag_player_node': 'BagPlayerNode',
    'vlm_node': 'VlmNode', 'scene_describer_node': 'SceneDescriberNode',
    'navigator_node': 'NavigatorNode', 'monitor_node': 'MonitorNode', 'recorder': 'Recorder',
}


def build_nodes(specs):
    nodes = []
    for spec in specs:
        cls = getattr(importlib.import_module(f'vlm_nav.{spec.executable}'),
                      NODE_CLASSES[spec.executable])
        overrides = [Parameter(k, value=v) for k, v in spec.parameters.items()]
        nodes.append(cls(parameter_overrides=overrides))
    return nodes


def preload_model_code(specs) -> None:
    """
    Import torch and transformers' auto classes on this thread before any node runs.

    vlm_node loads its model on a thread of its own; in one process beside the simulator's
    renderer (which holds the GIL while it draws) that thread's thousands of imports each
    wait for the GIL again, and a load of seconds takes minutes.
    """
    if not any(spec.executable == 'vlm_node' for spec in specs):
        return
    if all(is_served_spec(str(spec.parameters.get('model', ''))) for spec in specs
           if spec.executable == 'vlm_node'):
        return
    import torch  # noqa: F401
    import transformers
    transformers.AutoModelForImageTextToText, transformers.AutoProcessor  # noqa: B018


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('profile', choices=sorted(PROFILE_ARGUMENTS))
    parser.add_argument('--params-file', default=None)
    parser.add_argument('--model', default='')
    parser.add_argument('--target', default='')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--bag', default='', help='rosbag2 folder (replay)')
    args = parser.parse_args(argv)
    if args.profile == 'replay' and not args.bag:
        parser.error('replay needs --bag')
    specs = profile_nodes(args.profile, model=args.model, target=args.target, seed=args.seed,
                          bag=args.bag)
    ros_args = ['--ros-args', '--params-file', args.params_file or default_params_file()]
    preload_model_code(specs)
    with ros_session(args=[sys.argv[0]] + ros_args):
        nodes = build_nodes(specs)
        # vlm_node's calls in flight end at once on shutdown (VlmNode.stop_serving)
        stops = [node.stop_serving for node in nodes if hasattr(node, 'stop_serving')]
        spin_until_shutdown(nodes, MultiThreadedExecutor(num_threads=6),
                            stop=lambda: [stop() for stop in stops])
    return 0


if __name__ == '__main__':
    sys.exit(main())
