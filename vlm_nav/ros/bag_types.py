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

"""Message classes and rosbags typestores by ROS type name, for the nodes that use bags."""

import importlib
import os
from pathlib import Path
import sys
from typing import List

from rosbags.typesys import get_types_from_msg, get_typestore, Stores

REPO = Path(__file__).resolve().parents[2]


def message_class(type_name: str):
    """Return the rclpy message class of a type name ('sensor_msgs/msg/Image')."""
    package, _, name = type_name.split('/')
    return getattr(importlib.import_module(f'{package}.msg'), name)


def _interface_dirs(package: str) -> List[Path]:
    """Return where a package's .msg files may be: ament index, Python prefix, source tree."""
    prefixes = [p for p in os.environ.get('AMENT_PREFIX_PATH', '').split(os.pathsep) if p]
    dirs = [Path(p) / 'share' / package / 'msg' for p in prefixes + [sys.prefix]]
    return dirs + [REPO / package / 'msg']


def typestore_for(msgtypes) -> object:
    """Return rosbags' Kilted typestore plus the definitions of any msgtypes it lacks."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    missing = {t.split('/')[0] for t in msgtypes if t not in typestore.fielddefs}
    for package in sorted(missing):
        folder = next((d for d in _interface_dirs(package) if d.is_dir()), None)
        if folder is None:
            raise FileNotFoundError(f'no .msg definitions for {package} in '
                                    f'{[str(d) for d in _interface_dirs(package)]}')
        types = {}
        for path in sorted(folder.glob('*.msg')):
            types.update(get_types_from_msg(path.read_text(), f'{package}/msg/{path.stem}'))
        typestore.register(types)
    return typestore
