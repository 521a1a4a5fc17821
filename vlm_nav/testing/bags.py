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
Writing rosbag2 files in the shapes robots record, on the pip path, for tests.

`write_bag` writes with the `rosbags` library: mcap or sqlite3, one file or split in
several (rosbag2's `NAME_0.mcap`, `NAME_1.mcap`, ... beside one metadata.yaml), optionally
zstd-compressed per file or per message, with the type definitions from rosbags' Kilted
typestore, so the bags open in `ros2 bag play`, Foxglove and rosbags alike.
`write_humble_bag` writes what Humble's `ros2 bag record` writes by default: sqlite3
(schema 3, no message definitions) with metadata version 5. Messages are serialized with
rclpy: the same CDR bytes `ros2 bag record` stores. `read_messages` reads a bag back as
rclpy messages, to write it again in another shape.
"""

from pathlib import Path
import shutil
import sqlite3
from typing import Dict, Iterable, Iterator, List, Tuple

from rclpy.serialization import deserialize_message, serialize_message
from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer
from rosbags.typesys import get_typestore, Stores

from vlm_nav.ros.bags import Bag, message_class
import yaml

STORAGES = ('mcap', 'sqlite3')
COMPRESSIONS = ('', 'file', 'message')
# offered_qos_profiles as Humble's recorder writes them for a best-effort sensor publisher
HUMBLE_QOS = ('- history: 3\n  depth: 0\n  reliability: 2\n  durability: 2\n  deadline:\n'
              '    sec: 9223372036\n    nsec: 854775807\n  lifespan:\n    sec: 9223372036\n'
              '    nsec: 854775807\n  liveliness: 1\n  liveliness_lease_duration:\n'
              '    sec: 9223372036\n    nsec: 854775807\n  avoid_ros_namespace_conventions: '
              'false')


def type_name(msg) -> str:
    """Return the ROS type name of an rclpy message ('sensor_msgs/msg/Image')."""
    return f'{type(msg).__module__.split(".")[0]}/msg/{type(msg).__name__}'


def read_messages(path: str) -> Iterator[Tuple[str, int, object]]:
    """Yield (topic, receive time ns, rclpy message) of every message of a bag, in time order."""
    with Bag(path) as bag:
        for topic, msgtype, time_ns, raw in bag.messages(list(bag.topics())):
            yield topic, time_ns, deserialize_message(bytes(raw), message_class(msgtype))


def _serialized(messages: Iterable[Tuple[str, int, object]]) -> List[Tuple[str, str, int, bytes]]:
    return [(topic, type_name(msg), int(time_ns), serialize_message(msg))
            for topic, time_ns, msg in messages]


def _write_one(path: Path, rows, storage: str, compression: str,
               types: Dict[str, str]) -> None:
    """Write rows (topic, type, ns, cdr) into one new rosbags bag folder, every topic declared."""
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    typestore = get_typestore(Stores.ROS2_KILTED)
    writer = Writer(path, version=9, storage_plugin=plugin)
    if compression:
        mode = CompressionMode.FILE if compression == 'file' else CompressionMode.MESSAGE
        writer.set_compression(mode, CompressionFormat.ZSTD)
    with writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=typestore)
                       for topic, msgtype in types.items()}
        for topic, _, time_ns, raw in rows:
            writer.write(connections[topic], time_ns, raw)


def write_bag(path: str, messages: Iterable[Tuple[str, int, object]], storage: str = 'mcap',
              split_every: int = 0, compression: str = '') -> Dict[str, int]:
    """
    Write (topic, time_ns, rclpy message) triples to a new rosbag2 folder; counts per topic.

    split_every > 0 splits the bag into files of that many messages (rosbag2's split
    layout: every file declares every topic, one metadata.yaml lists them all);
    compression is '' (none), 'file' or 'message' (zstd).
    """
    if storage not in STORAGES:
        raise ValueError(f'storage must be one of {STORAGES}, not {storage!r}')
    if compression not in COMPRESSIONS:
        raise ValueError(f'compression must be one of {COMPRESSIONS}, not {compression!r}')
    rows = _serialized(messages)
    types: Dict[str, str] = {}
    counts: Dict[str, int] = {}
    for topic, msgtype, _, _ in rows:
        types.setdefault(topic, msgtype)
        counts[topic] = counts.get(topic, 0) + 1
    target = Path(path)
    if split_every <= 0 or len(rows) <= split_every:
        _write_one(target, rows, storage, compression, types)
        return counts
    target.mkdir(parents=True)
    parts = [rows[i:i + split_every] for i in range(0, len(rows), split_every)]
    merged = None
    for index, part in enumerate(parts):
        folder = target / f'.part{index}'
        _write_one(folder, part, storage, compression, types)
        metadata = yaml.safe_load((folder / 'metadata.yaml').read_text())
        info = metadata['rosbag2_bagfile_information']
        (stored,) = info['relative_file_paths']
        name = f'{target.name}_{index}{stored[len(folder.name):]}'
        (folder / stored).rename(target / name)
        shutil.rmtree(folder)
        info['relative_file_paths'] = [name]
        info['files'][0]['path'] = name
        if merged is None:
            merged = info
            continue
        start = min(merged['starting_time']['nanoseconds_since_epoch'],
                    info['starting_time']['nanoseconds_since_epoch'])
        end = max(merged['starting_time']['nanoseconds_since_epoch'] +
                  merged['duration']['nanoseconds'],
                  info['starting_time']['nanoseconds_since_epoch'] +
                  info['duration']['nanoseconds'])
        merged['starting_time']['nanoseconds_since_epoch'] = start
        merged['duration']['nanoseconds'] = end - start
        merged['message_count'] += info['message_count']
        merged['relative_file_paths'].append(name)
        merged['files'].append(info['files'][0])
        for mine, theirs in zip(merged['topics_with_message_count'],
                                info['topics_with_message_count']):
            mine['message_count'] += theirs['message_count']
    (target / 'metadata.yaml').write_text(yaml.safe_dump(
        {'rosbag2_bagfile_information': merged}, sort_keys=False))
    return counts


HUMBLE_SCHEMA = """
CREATE TABLE schema(schema_version INTEGER PRIMARY KEY, ros_distro TEXT NOT NULL);
CREATE TABLE metadata(id INTEGER PRIMARY KEY, metadata_version INTEGER NOT NULL,
                      metadata TEXT NOT NULL);
CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,
                    serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);
CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,
                      timestamp INTEGER NOT NULL, data BLOB NOT NULL);
CREATE INDEX timestamp_idx ON messages (timestamp ASC);
"""


def write_humble_bag(path: str, messages: Iterable[Tuple[str, int, object]],
                     db_distro: str = 'humble', version: int = 5,
                     metadata_distro: str = '') -> Dict[str, int]:
    """
    Write a bag as Humble's `ros2 bag record` does: sqlite3 schema 3, no type definitions.

    The .db3 keeps db_distro in its schema table (Humble writes $ROS_DISTRO there; '' as
    a recorder without it); metadata.yaml is `version` 5 with no ros_distro unless
    metadata_distro is given (a field of version 8 on).
    """
    rows = _serialized(messages)
    target = Path(path)
    target.mkdir(parents=True)
    name = f'{target.name}_0.db3'
    topics: Dict[str, Tuple[int, str]] = {}
    counts: Dict[str, int] = {}
    db = sqlite3.connect(target / name)
    with db:
        db.executescript(HUMBLE_SCHEMA)
        db.execute('INSERT INTO schema VALUES (3, ?)', (db_distro,))
        for topic, msgtype, time_ns, raw in rows:
            if topic not in topics:
                topics[topic] = (len(topics) + 1, msgtype)
                db.execute('INSERT INTO topics VALUES (?, ?, ?, ?, ?)',
                           (len(topics), topic, msgtype, 'cdr', HUMBLE_QOS))
            db.execute('INSERT INTO messages (topic_id, timestamp, data) VALUES (?, ?, ?)',
                       (topics[topic][0], time_ns, raw))
            counts[topic] = counts.get(topic, 0) + 1
    db.close()
    stamps = [t for _, _, t, _ in rows] or [0]
    info = {
        'version': version,
        'storage_identifier': 'sqlite3',
        'duration': {'nanoseconds': max(stamps) - min(stamps)},
        'starting_time': {'nanoseconds_since_epoch': min(stamps)},
        'message_count': len(rows),
        'topics_with_message_count': [
            {'topic_metadata': {'name': topic, 'type': msgtype, 'serialization_format': 'cdr',
                                'offered_qos_profiles': HUMBLE_QOS},
             'message_count': counts[topic]}
            for topic, (_, msgtype) in topics.items()],
        'compression_format': '',
        'compression_mode': '',
        'relative_file_paths': [name],
        'files': [{'path': name,
                   'starting_time': {'nanoseconds_since_epoch': min(stamps)},
                   'duration': {'nanoseconds': max(stamps) - min(stamps)},
                   'message_count': len(rows)}],
    }
    if metadata_distro:
        info['ros_distro'] = metadata_distro
    (target / 'metadata.yaml').write_text(yaml.safe_dump(
        {'rosbag2_bagfile_information': info}, sort_keys=False))
    return counts
