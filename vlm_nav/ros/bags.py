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
Open any rosbag2 a robot records and find its camera: the bag layer of replay and evaluation.

No rclpy here, only `rosbags`. A bag is a folder with metadata.yaml (one or several
storage files: a split bag), one `.mcap` or `.db3` file, or a folder of storage files whose
metadata.yaml is missing; sqlite3 or mcap; zstd-compressed per file or per message.

Message definitions stored in the bag (mcap, and sqlite3 from Iron on) are used as they
are. A bag without them (Humble's sqlite3, metadata version 5) is read with rosbags'
typestore of the distro that wrote it: the one asked for (`--distro`, the player's
`distro` parameter), else the metadata's `ros_distro` (written from metadata version 8 on),
else the `ros_distro` a Humble-or-later `.db3` keeps, else the oldest distro whose rosbag2
writes the bag's metadata version (rosbag2_storage's bag_metadata.hpp: Dashing 1, Eloquent
2, Foxy and Galactic 4, Humble 5, Iron 7, Jazzy and later 9). `Bag.typestore_note` says
which was used.

Every problem is a `BagError`: one line naming the file, what is wrong and what to do.
"""

from contextlib import ExitStack
from dataclasses import dataclass
import heapq
import importlib
import os
from pathlib import Path
import sqlite3
import sys
from typing import Dict, Iterator, List, Optional, Sequence, Set, Tuple

from rosbags.interfaces import Connection, MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.typesys import get_types_from_idl, get_types_from_msg, get_typestore, Stores
import yaml

IMAGE = 'sensor_msgs/msg/Image'
COMPRESSED = 'sensor_msgs/msg/CompressedImage'
CAMERA_INFO = 'sensor_msgs/msg/CameraInfo'
IMAGE_TYPES = (IMAGE, COMPRESSED)
DEPTH_ENCODINGS = ('16uc1', '32fc1')          # a depth camera's raw Image encodings

DISTROS = {
    'dashing': Stores.ROS2_DASHING, 'eloquent': Stores.ROS2_ELOQUENT,
    'foxy': Stores.ROS2_FOXY, 'galactic': Stores.ROS2_GALACTIC,
    'humble': Stores.ROS2_HUMBLE, 'iron': Stores.ROS2_IRON, 'jazzy': Stores.ROS2_JAZZY,
    'kilted': Stores.ROS2_KILTED, 'lyrical': Stores.ROS2_LYRICAL, 'rolling': Stores.LATEST,
}
# metadata version -> the oldest distro whose rosbag2 writes it (3, 6 and 8 were only ever
# written between releases)
VERSION_DISTROS = {1: 'dashing', 2: 'eloquent', 3: 'eloquent', 4: 'foxy', 5: 'humble',
                   6: 'iron', 7: 'iron', 8: 'jazzy', 9: 'jazzy'}
NEWEST_VERSION = 9                   # the newest metadata version rosbags reads
DEFAULT_DISTRO = 'kilted'            # the package's own distro, when nothing else tells
STORAGE_SUFFIXES = ('.mcap', '.db3')


REPO = Path(__file__).resolve().parents[2]


class BagError(ValueError):
    """A bag that can't be read or used; the message names the file and says what to do."""


def topic_name(topic: str) -> str:
    """Return a topic as bags name it: absolute ('camera/image_raw' -> '/camera/image_raw')."""
    topic = topic.strip()
    return topic if not topic or topic.startswith('/') else '/' + topic


@dataclass(frozen=True)
class Stream:
    """An image topic of a bag: a camera or a depth camera."""

    topic: str
    msgtype: str
    count: int
    encoding: str        # the first frame's encoding (Image) or format (CompressedImage)
    kind: str            # 'camera' or 'depth'

    @property
    def compressed(self) -> bool:
        return self.msgtype == COMPRESSED

    def describe(self) -> str:
        return (f'{self.topic} ({self.msgtype.rsplit("/", 1)[-1]} '
                f'{self.encoding or "?"}, {self.count} frames)')


def _read_metadata(path: Path) -> dict:
    try:
        document = yaml.safe_load(path.read_text()) or {}
        return dict(document['rosbag2_bagfile_information'])
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as error:
        raise BagError(f'{path} is not a readable rosbag2 metadata file '
                       f'({type(error).__name__}: {error}); `ros2 bag reindex '
                       f'{path.parent}` writes it anew from the storage files') from None


def _db3_distro(path: Path) -> str:
    """Return the ros_distro a .db3 keeps in its schema table (Humble on), or ''."""
    try:
        db = sqlite3.connect(f'file:{path}?mode=ro&immutable=1', uri=True)
    except sqlite3.Error:
        return ''
    try:
        row = db.execute('SELECT ros_distro FROM schema').fetchone()
        return str(row[0]).strip().lower() if row and row[0] else ''
    except sqlite3.Error:
        return ''
    finally:
        db.close()


def _stored_types(connection: Connection) -> Dict:
    """Return the types a connection's stored definition declares (rosbags' parse trees)."""
    data = connection.msgdef.data
    if connection.msgdef.format == MessageDefinitionFormat.MSG:
        return dict(get_types_from_msg(data, connection.msgtype))
    separator = '=' * 80 + '\n'
    if data.startswith(f'{separator}IDL: '):
        types: Dict = {}
        for part in data.split(separator)[1:]:
            types.update(get_types_from_idl(part.split('\n', 1)[1]))
        return types
    return dict(get_types_from_idl(data))


def _typestore(connections: Sequence[Connection],
               distro: str) -> Tuple[object, Set[str], Set[str]]:
    """
    Return a typestore for the connections' types, the types defined in the bag, the unparsed.

    Stored definitions first, as rosbags' AnyReader reads them, but one it can't parse (a
    service event's, say) leaves that type to the distro's typestore instead of failing
    the bag; the distro's typestore then gives every type still missing.
    """
    types: Dict = {}
    stored: Set[str] = set()
    unreadable: Set[str] = set()
    for connection in connections:
        if connection.msgdef.format == MessageDefinitionFormat.NONE:
            continue
        try:
            types.update(_stored_types(connection))
            stored.add(connection.msgtype)
        except Exception:  # noqa: B902 - rosbags' parser errors: the distro's types instead
            unreadable.add(connection.msgtype)
    typestore = get_typestore(Stores.EMPTY)
    typestore.register(types)
    fallback = get_typestore(DISTROS[distro])
    typestore.register({name: fields for name, fields in fallback.fielddefs.items()
                        if name not in typestore.fielddefs})
    return typestore, stored, unreadable


class Bag:
    """
    One rosbag2, open for reading: `with Bag(path, distro) as bag:`.

    `streams()`, `cameras()`, `select_camera()` find the images; `messages()` reads raw
    messages in time order over every storage file; `deserialize()` decodes one with the
    typestore chosen at open.
    """

    def __init__(self, path, distro: str = ''):
        self.path = Path(str(path)).expanduser()
        self.asked_distro = (distro or '').strip().lower()
        self.metadata: Dict = {}
        self.files: List[Path] = []
        self.distro = ''
        self.typestore_note = ''
        self.layout_note = ''
        self.connections: List[Connection] = []
        self._readers: List[Reader] = []
        self._stack: Optional[ExitStack] = None
        self._typestore = None
        self._streams: Optional[List[Stream]] = None

    # ---- opening ------------------------------------------------------------------------
    def __enter__(self) -> 'Bag':
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self) -> 'Bag':  # noqa: A003 - as files and readers name it
        """Open the bag; raise BagError with what to do when it can't be read."""
        if self.asked_distro and self.asked_distro not in DISTROS:
            raise BagError(f'unknown distro {self.asked_distro!r} for {self.path}: one of '
                           f'{", ".join(DISTROS)}')
        paths = self._storage_paths()
        self.distro, source = self._choose_distro()
        self._stack = ExitStack()
        try:
            for path in paths:
                reader = Reader(path)
                self._stack.enter_context(reader)
                self._readers.append(reader)
        except Exception as error:  # noqa: B902 - rosbags, apsw, yaml: all one message
            self.close()
            hint = ('only CDR bags can be replayed' if 'Serialization format' in str(error)
                    else 'if the recording was cut off, `ros2 bag reindex` may repair it')
            raise BagError(f'cannot read {self.path}: {type(error).__name__}: '
                           f'{str(error).strip()}; {hint}') from None
        self.connections = [c for r in self._readers for c in r.connections]
        self._typestore, stored, unreadable = _typestore(self.connections, self.distro)
        wanted = {c.msgtype for c in self.connections}
        notes = []
        if stored:
            notes.append('message definitions stored in the bag')
        if unreadable:
            notes.append(f'stored definitions rosbags cannot parse: {sorted(unreadable)}')
        if wanted - stored:
            notes.append(f'the {self.distro} typestore for ' +
                         (f'{sorted(wanted - stored)}' if stored else 'every type') +
                         f' ({source})')
        if not stored and not unreadable:
            notes.insert(0, 'no message definitions stored')
        self.typestore_note = '; '.join(notes) or 'no topics'
        return self

    def _storage_paths(self) -> List[Path]:
        path = self.path
        if not path.exists():
            raise BagError(f'{path} does not exist: give the bag folder (the one with '
                           'metadata.yaml) or one .mcap/.db3 file')
        if path.is_file() and path.name == 'metadata.yaml':
            path = self.path = path.parent
        if path.is_dir():
            if (path / 'metadata.yaml').is_file():
                self.metadata = _read_metadata(path / 'metadata.yaml')
                self._check_metadata()
                names = self.metadata.get('relative_file_paths') or []
                self.files = [path / Path(str(n)).name for n in names]
                missing = [str(f) for f in self.files if not f.exists()]
                if missing:
                    raise BagError(f'{path} lists storage files that are missing: {missing}; '
                                   'copy the whole bag folder')
                split = f', split in {len(self.files)} files' if len(self.files) > 1 else ''
                self.layout_note = (f'{self.metadata.get("storage_identifier", "?")}, '
                                    f'metadata version {self.metadata.get("version")}{split}')
                return [path]
            self.files = sorted(p for p in path.iterdir() if p.suffix in STORAGE_SUFFIXES)
            if not self.files:
                raise BagError(f'{path} is not a rosbag2: no metadata.yaml and no .mcap or '
                               '.db3 file in it')
            if len({p.suffix for p in self.files}) > 1:
                raise BagError(f'{path} has no metadata.yaml and both .mcap and .db3 files: '
                               'give one file, or `ros2 bag reindex` the folder')
            self.layout_note = (f'no metadata.yaml: its {len(self.files)} storage files '
                                'read directly (`ros2 bag reindex` writes one)')
            return list(self.files)
        if path.suffix in STORAGE_SUFFIXES:
            self.files = [path]
            self.layout_note = f'one {path.suffix[1:]} file'
            return [path]
        if path.suffix == '.bag':
            raise BagError(f'{path} is a ROS 1 bag: convert it to rosbag2 first '
                           f'(`rosbags-convert --src {path} --dst BAG_FOLDER`)')
        if path.suffix == '.zstd':
            raise BagError(f'{path} is one compressed file of a bag: give its folder '
                           f'({path.parent}), whose metadata.yaml says how to decompress it')
        raise BagError(f'{path} is not a rosbag2: give the bag folder (the one with '
                       'metadata.yaml) or one .mcap/.db3 file')

    def _check_metadata(self) -> None:
        version = self.metadata.get('version')
        if not isinstance(version, int):
            raise BagError(f'{self.path}/metadata.yaml has no rosbag2 version: '
                           f'`ros2 bag reindex {self.path}` writes it anew')
        if version > NEWEST_VERSION:
            raise BagError(f'{self.path} is rosbag2 metadata version {version}, newer than '
                           f'the rosbags library here reads (up to {NEWEST_VERSION}): '
                           '`pip install -U rosbags`')
        mode = str(self.metadata.get('compression_mode') or '').lower()
        fmt = str(self.metadata.get('compression_format') or '')
        if mode not in ('', 'none') and fmt != 'zstd':
            raise BagError(f'{self.path} is compressed with {fmt!r} ({mode} mode), which '
                           'rosbags does not read (zstd only): decompress it with '
                           '`ros2 bag convert`')
        storage = self.metadata.get('storage_identifier')
        if storage not in ('mcap', 'sqlite3'):
            raise BagError(f'{self.path} uses the storage plugin {storage!r}; rosbags reads '
                           "'mcap' and 'sqlite3': convert it with `ros2 bag convert`")

    def _choose_distro(self) -> Tuple[str, str]:
        """Return the distro whose typestore reads types without stored definitions, and why."""
        if self.asked_distro:
            return self.asked_distro, 'as asked'
        recorded = str(self.metadata.get('ros_distro') or '').strip().lower()
        if recorded in DISTROS:
            return recorded, f'the metadata says ros_distro {recorded}'
        for path in self.files:
            if path.suffix == '.db3':
                recorded = _db3_distro(path)
                if recorded in DISTROS:
                    return recorded, f'{path.name} says ros_distro {recorded}'
        version = self.metadata.get('version')
        if version in VERSION_DISTROS:
            return (VERSION_DISTROS[version],
                    f'guessed from metadata version {version}; --distro / distro:= to choose')
        return DEFAULT_DISTRO, 'nothing in the bag tells; --distro / distro:= to choose'

    def close(self) -> None:
        stack, self._stack = self._stack, None
        self._readers = []
        if stack is not None:
            stack.close()

    def describe(self) -> str:
        """Return one line: the bag, its layout and where its message definitions come from."""
        return f'{self.path} ({self.layout_note}; {self.typestore_note})'

    # ---- contents -----------------------------------------------------------------------
    def topics(self) -> Dict[str, Tuple[str, int]]:
        """Return topic -> (message type, message count)."""
        topics: Dict[str, Tuple[str, int]] = {}
        for c in self.connections:
            msgtype, count = topics.get(c.topic, (c.msgtype, 0))
            topics[c.topic] = (msgtype if msgtype == c.msgtype else '?', count + c.msgcount)
        return topics

    def messages(self, topics: Sequence[str]) -> Iterator[Tuple[str, str, int, bytes]]:
        """Yield (topic, message type, receive time ns, raw CDR) of topics, in time order."""
        wanted = set(topics)
        streams = []
        for reader in self._readers:
            connections = [c for c in reader.connections if c.topic in wanted]
            if connections:
                streams.append(reader.messages(connections=connections))
        count = 0
        try:
            for connection, timestamp, raw in heapq.merge(*streams, key=lambda m: m[1]):
                count += 1
                yield connection.topic, connection.msgtype, timestamp, raw
        except BagError:
            raise
        except Exception as error:  # noqa: B902 - a damaged storage file, any library's error
            raise BagError(f'{self.path} is damaged after {count} messages: '
                           f'{type(error).__name__}: {str(error).strip()}; '
                           '`ros2 bag reindex` may repair it') from None

    def first(self, topic: str) -> Optional[Tuple[str, int, bytes]]:
        """Return the first message of a topic: (message type, time ns, raw CDR), or None."""
        for _, msgtype, timestamp, raw in self.messages([topic]):
            return msgtype, timestamp, raw
        return None

    def deserialize(self, raw: bytes, msgtype: str):
        """Decode a raw message with the bag's typestore (rosbags' message classes)."""
        if self._typestore is None:
            raise BagError(f'{self.path} is not open')
        return self._typestore.deserialize_cdr(raw, msgtype)

    def streams(self) -> List[Stream]:
        """Return the bag's image topics: cameras and depth cameras, by their first frame."""
        if self._streams is None:
            self._streams = []
            for topic, (msgtype, count) in sorted(self.topics().items()):
                if msgtype not in IMAGE_TYPES:
                    continue
                encoding = ''
                first = self.first(topic) if count else None
                if first is not None:
                    try:
                        msg = self.deserialize(first[2], msgtype)
                        encoding = str(msg.encoding if msgtype == IMAGE else msg.format)
                    except Exception:  # noqa: B902 - a bad first frame: the type still counts
                        encoding = '?'
                depth = (encoding.lower() in DEPTH_ENCODINGS if msgtype == IMAGE
                         else 'compresseddepth' in encoding.lower()
                         or topic.endswith('/compressedDepth'))
                self._streams.append(Stream(topic, msgtype, count, encoding,
                                            'depth' if depth else 'camera'))
        return list(self._streams)

    def cameras(self) -> List[Stream]:
        """Return the camera streams with frames; T/compressed counts as T when both are there."""
        cameras = [s for s in self.streams() if s.kind == 'camera' and s.count]
        raw = {s.topic for s in cameras if not s.compressed}
        return [s for s in cameras if not (s.compressed and s.topic.endswith('/compressed')
                                           and s.topic[:-len('/compressed')] in raw)]

    def _topic_summary(self) -> str:
        topics = self.topics()
        listed = [f'{t} ({m.rsplit("/", 1)[-1]})' for t, (m, _) in sorted(topics.items())[:12]]
        more = f' and {len(topics) - 12} more' if len(topics) > 12 else ''
        return ', '.join(listed) + more if listed else 'no topics'

    def select_camera(self, topic: str = '') -> Stream:
        """
        Return the camera stream to replay: the one named, else the bag's only one.

        A name given as image_transport's base topic (T for T/compressed) finds T/compressed.
        Raise BagError listing the cameras when there is none, several or not the one named.
        """
        topic = topic_name(topic)
        streams = {s.topic: s for s in self.streams()}
        if topic:
            chosen = streams.get(topic) or streams.get(topic + '/compressed')
            if chosen is None:
                cameras = ', '.join(s.describe() for s in self.cameras()) or 'none'
                raise BagError(f'{self.path} has no image topic {topic}; its cameras: '
                               f'{cameras}')
            if not chosen.count:
                raise BagError(f'{self.path} has no frame on {chosen.topic}: pick another '
                               'camera with --camera-topic (camera_topic:=)')
            return chosen
        cameras = self.cameras()
        if len(cameras) == 1:
            return cameras[0]
        if not cameras:
            empty = [s.topic for s in self.streams() if not s.count]
            detail = f' (image topics without frames: {empty})' if empty else ''
            raise BagError(f'{self.path} has no camera stream (sensor_msgs/msg/Image or '
                           f'CompressedImage){detail}; its topics: {self._topic_summary()}; '
                           'record the camera topic too (e.g. `ros2 bag record '
                           '/camera/image_raw`)')
        raise BagError(f'{self.path} has {len(cameras)} cameras: '
                       f'{", ".join(s.describe() for s in cameras)}; pick one with '
                       '--camera-topic TOPIC (camera_topic:=TOPIC under ros2 launch)')

    def select_depth(self, topic: str = '') -> Optional[Stream]:
        """Return the depth stream to pass through: the one named, else the only one, or None."""
        topic = topic_name(topic)
        depths = [s for s in self.streams() if s.kind == 'depth' and s.count]
        if topic:
            chosen = next((s for s in self.streams() if s.topic == topic), None)
            if chosen is None:
                raise BagError(f'{self.path} has no image topic {topic}; its depth streams: '
                               f'{", ".join(s.describe() for s in depths) or "none"}')
            return chosen
        if len(depths) > 1:
            raise BagError(f'{self.path} has {len(depths)} depth streams: '
                           f'{", ".join(s.describe() for s in depths)}; pick one with the '
                           "player's bag_depth_topic parameter")
        return depths[0] if depths else None

    def camera_info_topic(self, camera: Stream) -> Optional[str]:
        """
        Return the CameraInfo topic of a camera: its sibling camera_info, or the only one.

        /camera/color/image_raw and /camera/color/image_raw/compressed both have
        /camera/color/camera_info; a bag with one camera and one CameraInfo pairs those.
        """
        infos = sorted(t for t, (m, n) in self.topics().items() if m == CAMERA_INFO and n)
        base = camera.topic
        if camera.compressed and base.endswith('/compressed'):
            base = base[:-len('/compressed')]
        sibling = base.rsplit('/', 1)[0] + '/camera_info'
        if sibling in infos:
            return sibling
        if len(infos) == 1 and len(self.streams()) == 1:
            return infos[0]
        return None


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
