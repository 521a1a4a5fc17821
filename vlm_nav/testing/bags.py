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
Writing rosbag2 files (mcap or sqlite3) on the pip path with the `rosbags` library.

Messages are serialized with rclpy (the same CDR bytes `ros2 bag record` stores), and
the connection's type definition comes from rosbags' Kilted typestore, so the bags
open in `ros2 bag play`, Foxglove and rosbags alike.
"""

from pathlib import Path
from typing import Dict, Iterable, Tuple

from rclpy.serialization import serialize_message
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

STORAGES = ('mcap', 'sqlite3')


def write_bag(path: str, messages: Iterable[Tuple[str, int, object]],
              storage: str = 'mcap') -> Dict[str, int]:
    """Write (topic, time_ns, rclpy message) triples to a new rosbag2 folder; counts per topic."""
    if storage not in STORAGES:
        raise ValueError(f'storage must be one of {STORAGES}, not {storage!r}')
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    typestore = get_typestore(Stores.ROS2_KILTED)
    counts: Dict[str, int] = {}
    connections = {}
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        for topic, time_ns, msg in messages:
            if topic not in connections:
                module = type(msg).__module__.split('.')[0]
                msgtype = f'{module}/msg/{type(msg).__name__}'
                connections[topic] = writer.add_connection(topic, msgtype, typestore=typestore)
            writer.write(connections[topic], int(time_ns), serialize_message(msg))
            counts[topic] = counts.get(topic, 0) + 1
    return counts
