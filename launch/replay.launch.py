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
Offline: frames from a rosbag2 recording instead of a camera, through the whole stack.

The launch ends when bag_player_node does, as `vlm-nav bringup replay` does: 3 s after the
bag is over (the last answers are on their way), at once and with exit code 1 when the
replay failed (no camera in the bag, every frame refused, nothing subscribed: the
player's last line says which).
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import (DeclareLaunchArgument, EmitEvent, RegisterEventHandler,
                            TimerAction)
from launch.conditions import IfCondition
from launch.event_handlers import OnProcessExit
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

REPLAY_DRAIN_S = 3.0    # after the bag is over, before the stack stops (as bringup waits)


class ReplayFailed(RuntimeError):
    """The player exited non-zero: raised in the launch, which then exits 1."""


def _on_player_exit(event, context):
    """End the launch: after the drain when the bag is over, at once when the replay failed."""
    if event.returncode == 0:
        return [TimerAction(period=REPLAY_DRAIN_S, actions=[
            EmitEvent(event=Shutdown(reason='bag_player_node finished the bag'))])]
    # launch's exit code is 1 only for an error raised in it, not for a process's exit code.
    raise ReplayFailed(f'bag_player_node exited with code {event.returncode}: the replay '
                       'failed; its last line above says why')


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory('vlm_nav'), 'config',
                                  'vlm_nav.yaml')
    params_file = LaunchConfiguration('params_file')
    model = LaunchConfiguration('model')
    record = LaunchConfiguration('record')
    target = LaunchConfiguration('target')
    player = Node(package='vlm_nav', executable='bag_player_node', name='bag_player_node',
                  parameters=[params_file, {
                      'bag': ParameterValue(LaunchConfiguration('bag'), value_type=str),
                      'camera_topic': ParameterValue(LaunchConfiguration('camera_topic'),
                                                     value_type=str),
                      'distro': ParameterValue(LaunchConfiguration('distro'), value_type=str),
                  }], output='screen')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameters of every vlm_nav node'),
        DeclareLaunchArgument('model', default_value='',
                              description="HF model id or folder; '' = embedded model"),
        DeclareLaunchArgument('record', default_value='',
                              description='rosbag2 folder to record into; empty = no recording'),
        DeclareLaunchArgument('target', default_value='',
                              description='search target; empty = navigator idle'),
        DeclareLaunchArgument('bag', description='rosbag2 to replay: its folder or one '
                              '.mcap/.db3 file'),
        DeclareLaunchArgument('camera_topic', default_value='',
                              description="the bag's camera topic; empty = its only camera"),
        DeclareLaunchArgument('distro', default_value='',
                              description='typestore for a bag without stored message '
                              'definitions (humble, jazzy, ...); empty = from the bag'),
        DeclareLaunchArgument('monitor', default_value='false',
                              description='also start monitor_node (security alerts)'),
        player,
        Node(package='vlm_nav', executable='vlm_node', name='vlm_node',
             parameters=[params_file, {'model': model}], output='screen'),
        Node(package='vlm_nav', executable='scene_describer_node', name='scene_describer_node',
             parameters=[params_file], output='screen'),
        Node(package='vlm_nav', executable='navigator_node', name='navigator_node',
             parameters=[params_file, {'target': target}], output='screen'),
        Node(package='vlm_nav', executable='monitor_node', name='monitor_node',
             parameters=[params_file], output='screen',
             condition=IfCondition(LaunchConfiguration('monitor'))),
        Node(package='vlm_nav', executable='recorder', name='recorder',
             parameters=[params_file, {'output': record}], output='screen',
             condition=IfCondition(PythonExpression(["'", record, "' != ''"]))),
        RegisterEventHandler(OnProcessExit(target_action=player, on_exit=_on_player_exit)),
    ])
