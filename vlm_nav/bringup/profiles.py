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
Which nodes each bringup profile starts, with which parameters.

The pip-path twin of launch/*.launch.py (a test checks that both name the same nodes and
arguments).
"""

from dataclasses import dataclass, field
import os
from typing import Dict, List

import yaml

try:
    from ament_index_python.packages import get_package_share_directory
except ImportError:     # no ament index on this path: the source tree's config/ only
    get_package_share_directory = None

PACKAGE = 'vlm_nav'


@dataclass
class NodeSpec:
    executable: str
    name: str
    parameters: Dict[str, object] = field(default_factory=dict)   # overrides of the YAML


# profile -> launch arguments it takes (same names as the launch file's)
PROFILE_ARGUMENTS: Dict[str, List[str]] = {
    'explore': ['params_file', 'model', 'record'],
    'search': ['params_file', 'model', 'target', 'record'],
    'replay': ['params_file', 'model', 'target', 'bag', 'camera_topic', 'distro', 'record',
               'monitor'],
    'sim': ['params_file', 'model', 'target', 'seed', 'record', 'monitor'],
    'monitor': ['params_file', 'model', 'scenario_file', 'scenarios', 'alert_dir', 'record'],
}


def default_params_file(name: str = 'vlm_nav.yaml') -> str:
    """Return the path of config/<name>: from the source tree, else from the share folder."""
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = [os.path.join(here, '..', '..', 'config', name)]
    if get_package_share_directory is not None:
        try:
            candidates.append(os.path.join(get_package_share_directory(PACKAGE), 'config',
                                           name))
        except Exception:  # noqa: B902 - not installed through ament: the source tree only
            pass
    for path in candidates:
        if os.path.isfile(path):
            return os.path.normpath(path)
    raise FileNotFoundError(f'config/{name} not found in ' + ', '.join(candidates))


def node_parameters(node: str, params_file: str = '') -> Dict[str, object]:
    """
    Return a node's ros__parameters from a parameters file (default: config/vlm_nav.yaml).

    For code that runs a node's logic without the node (the no-ROS benchmark).
    """
    with open(params_file or default_params_file()) as f:
        document = yaml.safe_load(f) or {}
    return dict((document.get(node) or {}).get('ros__parameters') or {})


def profile_nodes(profile: str, model: str = '', target: str = '',
                  seed: int = 0, bag: str = '', record: str = '', monitor: bool = False,
                  scenario_file: str = '', scenarios: str = '',
                  alert_dir: str = '', camera_topic: str = '',
                  distro: str = '') -> List[NodeSpec]:
    """
    Return the nodes of a profile; arguments become parameter overrides, as in launch files.

    monitor adds monitor_node to sim and replay (the monitor profile always has it: a
    fixed camera, the VLM and the monitor, no navigation). camera_topic and distro are the
    replayed bag's camera and the typestore for a bag without message definitions.
    """
    if profile not in PROFILE_ARGUMENTS:
        raise ValueError(f'unknown profile {profile!r}; one of {sorted(PROFILE_ARGUMENTS)}')
    vlm = NodeSpec('vlm_node', 'vlm_node', {'model': model})
    if profile == 'monitor':
        nodes = [NodeSpec('camera_node', 'camera_node'), vlm,
                 NodeSpec('monitor_node', 'monitor_node', {
                     'scenario_file': scenario_file, 'scenarios': scenarios,
                     'alert_dir': alert_dir})]
        if record:
            nodes.append(NodeSpec('recorder', 'recorder', {'output': record}))
        return nodes
    describer = NodeSpec('scene_describer_node', 'scene_describer_node')
    navigator = NodeSpec('navigator_node', 'navigator_node', {'target': target})
    if profile == 'explore':
        navigator.parameters = {'mode': 'explore'}
    elif profile == 'search':
        navigator.parameters = {'mode': 'search', 'target': target}
    if profile == 'sim':
        source = NodeSpec('sim_node', 'sim_node', {'seed': seed})
    elif profile == 'replay':
        source = NodeSpec('bag_player_node', 'bag_player_node', {
            'bag': bag, 'camera_topic': camera_topic, 'distro': distro})
    else:
        source = NodeSpec('camera_node', 'camera_node')
    nodes = [source, vlm, describer, navigator]
    if monitor and 'monitor' in PROFILE_ARGUMENTS[profile]:   # its parameters: the YAML's
        nodes.append(NodeSpec('monitor_node', 'monitor_node'))
    if record:      # a rosbag2 of camera, descriptions, decisions and Twists
        nodes.append(NodeSpec('recorder', 'recorder', {'output': record}))
    return nodes
