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

from glob import glob

from setuptools import find_packages, setup

package_name = 'vlm_nav'


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*']),
    package_data={'vlm_nav': ['embedded_model/*']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml')),
    ],
    install_requires=['setuptools'],
    zip_safe=False,
    maintainer='vlm_nav maintainers',
    maintainer_email='maintainers@vlm-nav.org',
    description='Find and approach things by what a vision-language model sees.',
    license='Apache-2.0',
    extras_require={'test': ['pytest']},
    entry_points={
        'console_scripts': [
            'camera_node = vlm_nav.camera_node:main',
            'vlm_node = vlm_nav.vlm_node:main',
            'scene_describer_node = vlm_nav.scene_describer_node:main',
            'navigator_node = vlm_nav.navigator_node:main',
            'sim_node = vlm_nav.sim_node:main',
            'bag_player_node = vlm_nav.bag_player_node:main',
            'recorder = vlm_nav.recorder:main',
            'oracle_node = vlm_nav.bench.oracle_node:main',
            'monitor_node = vlm_nav.monitor_node:main',
            'vlm-nav = vlm_nav.cli.main:main',
        ],
    },
)
