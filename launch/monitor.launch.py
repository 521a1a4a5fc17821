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
Security monitor: a camera, the VLM service and monitor_node (no navigation).

Alerts go to vlm_nav/alerts and <alert_dir>/alerts.jsonl. For the simulator or a bag, add
monitor:=true to sim.launch.py or replay.launch.py instead.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression
from launch_ros.actions import Node


def generate_launch_description() -> LaunchDescription:
    default_params = os.path.join(get_package_share_directory('vlm_nav'), 'config',
                                  'vlm_nav.yaml')
    params_file = LaunchConfiguration('params_file')
    model = LaunchConfiguration('model')
    record = LaunchConfiguration('record')
    return LaunchDescription([
        DeclareLaunchArgument('params_file', default_value=default_params,
                              description='parameters of every vlm_nav node'),
        DeclareLaunchArgument('model', default_value='',
                              description="HF model id or folder; '' = embedded model"),
        DeclareLaunchArgument('scenario_file', default_value='',
                              description="scenario YAML; '' = config/monitor_scenarios.yaml"),
        DeclareLaunchArgument('scenarios', default_value='',
                              description="comma-separated scenario ids; '' = the enabled ones"),
        DeclareLaunchArgument('alert_dir', default_value='',
                              description="alerts.jsonl and frames/; '' = ./vlm_nav_alerts"),
        DeclareLaunchArgument('record', default_value='',
                              description='rosbag2 folder to record into; empty = no recording'),
        Node(package='vlm_nav', executable='camera_node', name='camera_node',
             parameters=[params_file], output='screen'),
        Node(package='vlm_nav', executable='vlm_node', name='vlm_node',
             parameters=[params_file, {'model': model}], output='screen'),
        Node(package='vlm_nav', executable='monitor_node', name='monitor_node',
             parameters=[params_file, {
                 'scenario_file': LaunchConfiguration('scenario_file'),
                 'scenarios': LaunchConfiguration('scenarios'),
                 'alert_dir': LaunchConfiguration('alert_dir')}], output='screen'),
        Node(package='vlm_nav', executable='recorder', name='recorder',
             parameters=[params_file, {'output': record}], output='screen',
             condition=IfCondition(PythonExpression(["'", record, "' != ''"]))),
    ])
