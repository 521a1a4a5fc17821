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
Recording and offline evaluation of a bag.

`vlm-nav record` writes a readable rosbag2, and `vlm-nav evaluate-bag` replays the shipped
labelled simulator bag through a model.

The model here is a small LLaVA with random weights, so its accuracy is about chance:
these tests check the pipeline (pairing, counts, fields, ranges), not the model.
"""

import json
import math
from pathlib import Path
import subprocess
import sys

import cv2
import numpy as np
import pytest
from rosbags.highlevel import AnyReader

from vlm_nav.bringup.profiles import default_params_file, NodeSpec
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.cli import evaluate_bag
from vlm_nav.models import load_backend
from vlm_nav.ros.bags import Bag, BagError
import yaml

BAG = Path(__file__).resolve().parents[1] / 'data' / 'sim_turn'
REALSENSE = '/camera/color/image_raw/compressed'


@pytest.fixture
def one_thread():
    """One torch thread, as the nodes use in tests (two fight other processes for 2 cores)."""
    import torch
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def test_shipped_bag_is_small_and_labelled():
    size = sum(f.stat().st_size for f in BAG.iterdir())
    assert size < 1_000_000, size
    frames = evaluate_bag.read_labelled_frames(str(BAG))
    assert len(frames) >= 20
    stamps = [f.stamp_s for f in frames]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    for frame in frames:
        assert frame.rgb.shape == (96, 96, 3) and frame.rgb.dtype.name == 'uint8'
        assert abs(frame.truth['stamp'] - frame.stamp_s) < 0.005
        assert frame.truth['seed'] == 2 and isinstance(frame.truth['path_clear'], bool)
        assert {o['label'] for o in frame.truth['objects']} == {
            'red cone', 'red box', 'blue ball', 'green chair', 'green box'}
    visible = [o for f in frames for o in f.truth['objects'] if o['visible']]
    # The turn shows objects in every third, near and far: the metrics have something to do.
    assert {o['image_bearing'] for o in visible} == {'left', 'center', 'right'}
    assert {o['distance'] for o in visible} == {'near', 'far'}


def test_evaluator_scores_every_frame_and_object(tiny_llava_dir, one_thread):
    frames = evaluate_bag.read_labelled_frames(str(BAG))
    backend = load_backend(tiny_llava_dir)
    report = evaluate_bag.evaluate(frames, backend)
    objects = [o for f in frames for o in f.truth['objects']]
    assert report['frames'] == len(frames)
    assert report['pairs'] == len(objects)
    assert report['visible_pairs'] == sum(o['visible'] for o in objects)
    for name, value in report['metrics'].items():
        assert 0.0 <= value <= 1.0, (name, value)
    for name, value in report['baselines'].items():
        assert 0.0 < value <= 1.0, (name, value)
    # A random model is near chance; anything far off means the scoring is broken.
    assert 0.1 <= report['metrics']['bearing_accuracy'] <= 0.7
    assert sum(report['actions']['model'].values()) == report['pairs']
    assert sum(report['actions']['truth'].values()) == report['pairs']
    latency = report['latency_s']
    assert 0.0 < latency['p50'] <= latency['p95'] <= latency['max'] < 30.0
    assert set(report['per_label']) == {o['label'] for o in objects}
    text = evaluate_bag.markdown(dict(report, bag=str(BAG), model=backend.name))
    assert 'decision agreement' in text and 'bearing' in text


def test_evaluate_bag_cli_writes_json_and_markdown(tiny_llava_dir, tmp_path):
    out = tmp_path / 'eval'
    result = subprocess.run(
        [sys.executable, '-m', 'vlm_nav.cli.main', 'evaluate-bag', str(BAG), '--model',
         tiny_llava_dir, '--max-frames', '2', '--threads', '1', '--out', str(out)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / 'eval.json').read_text())
    assert report['frames'] == 2 and report['model'] == Path(tiny_llava_dir).name
    assert not math.isnan(report['metrics']['visible_accuracy'])
    assert (out / 'eval.md').read_text().startswith('# Offline evaluation')


def test_evaluator_refuses_a_bag_without_ground_truth(tmp_path):
    from sensor_msgs.msg import Image

    from vlm_nav.testing.bags import write_bag   # imports rclpy
    bag = tmp_path / 'no_truth'
    image = Image(height=1, width=1, encoding='rgb8', step=3, data=bytes(3))
    write_bag(str(bag), [('/camera/image_raw', 1, image)])
    with pytest.raises(ValueError, match='sim/ground_truth'):
        evaluate_bag.read_labelled_frames(str(bag))


@pytest.mark.ros
def test_record_cli_writes_a_sqlite3_bag(ros_domain, probe, tmp_path):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image
    bag = tmp_path / 'camera'
    camera = NodeSpec('camera_node', 'camera_node', {'width': 32, 'height': 32})
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    with Stack([camera], default_params_file(), echo=False):
        # The recording's clock starts with the recorder: start it once the camera sends.
        assert probe.wait_for(lambda: probe.messages('camera/image_raw'), 30.0)
        result = subprocess.run(
            [sys.executable, '-m', 'vlm_nav.cli.main', 'record', '-o', str(bag), '--storage',
             'sqlite3', '--duration', '4', '--topics', 'camera/image_raw',
             'camera/camera_info'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(bag.glob('*.db3')) and (bag / 'metadata.yaml').is_file()
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        image = next(reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages()
                     if c.topic == '/camera/image_raw')
        span_s = (reader.end_time - reader.start_time) / 1e9
    # --duration counts from the first message, so discovery time does not shorten the bag.
    assert 3.0 < span_s <= 4.5, span_s
    assert counts['/camera/image_raw'] > 5 and counts['/camera/camera_info'] > 5
    assert (image.width, image.height, image.encoding) == (32, 32, 'rgb8')


def robot_shaped(path: Path, shape: str, bad_frames=(), camera: str = REALSENSE) -> Path:
    """
    Write the shipped labelled bag again in a robot's shape; return its path.

    shape: 'humble' (sqlite3, metadata version 5, no definitions; raw frames), 'realsense'
    (mcap; the frames jpeg CompressedImage on camera), 'split' (mcap in 3 files, raw),
    'two_cameras' (realsense plus a raw /front_camera/image_raw). bad_frames: indices of
    frames whose data is replaced by bytes no decoder reads.
    """
    from sensor_msgs.msg import CompressedImage

    from vlm_nav.ros.image import image_to_rgb
    from vlm_nav.testing.bags import read_messages, write_bag, write_humble_bag
    messages, index = [], 0
    for topic, time_ns, msg in read_messages(str(BAG)):
        if topic != '/camera/image_raw':
            messages.append((topic, time_ns, msg))
            continue
        if shape in ('realsense', 'two_cameras'):
            bgr = cv2.cvtColor(image_to_rgb(msg), cv2.COLOR_RGB2BGR)
            jpeg = cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
            compressed = CompressedImage(header=msg.header, format='jpeg', data=jpeg)
            if index in bad_frames:
                compressed.data = b'not an image at all'
            messages.append((camera, time_ns, compressed))
            if shape == 'two_cameras':
                messages.append(('/front_camera/image_raw', time_ns + 1, msg))
        else:
            if index in bad_frames:
                msg.encoding = 'mystery8'
            messages.append((topic, time_ns, msg))
        index += 1
    if shape == 'humble':
        write_humble_bag(str(path), messages, db_distro='')
    else:
        write_bag(str(path), messages, 'mcap', split_every=60 if shape == 'split' else 0)
    return path


@pytest.mark.parametrize('shape', ['humble', 'realsense', 'split'])
def test_robot_shaped_bags_give_the_same_labelled_frames(shape, tmp_path):
    bag = robot_shaped(tmp_path / shape, shape)
    frames = evaluate_bag.read_labelled_frames(str(bag))
    shipped = evaluate_bag.read_labelled_frames(str(BAG))
    assert len(frames) == len(shipped) == 25
    assert frames.camera == (REALSENSE if shape == 'realsense' else '/camera/image_raw')
    assert frames.skipped() == {'refused': 0, 'no_truth': 0, 'bad_truth': 0,
                                'first_refusal': ''}
    for mine, theirs in zip(frames, shipped):
        assert mine.stamp_s == theirs.stamp_s and mine.truth == theirs.truth
        error = np.abs(mine.rgb.astype(int) - theirs.rgb.astype(int)).mean()
        assert error < (4.0 if shape == 'realsense' else 1e-9), error     # jpeg: nearly
    if shape == 'humble':
        assert 'the humble typestore' in frames.note and 'metadata version 5' in frames.note


def test_undecodable_frames_are_skipped_and_counted(tmp_path):
    bag = robot_shaped(tmp_path / 'bad', 'realsense', bad_frames=(0, 7))
    frames = evaluate_bag.read_labelled_frames(str(bag))
    assert len(frames) == 23 and frames.refused == 2 and frames.seen == 25
    assert 'could not decode compressed image' in frames.first_refusal
    raw = robot_shaped(tmp_path / 'mystery', 'humble', bad_frames=(3,))
    frames = evaluate_bag.read_labelled_frames(str(raw))
    assert len(frames) == 24 and frames.refused == 1
    assert "unsupported encoding 'mystery8'" in frames.first_refusal


def test_two_cameras_need_a_camera_topic(tmp_path):
    bag = robot_shaped(tmp_path / 'two', 'two_cameras')
    with pytest.raises(BagError, match='2 cameras: /camera/color/image_raw/compressed .*'
                       '/front_camera/image_raw .*--camera-topic'):
        evaluate_bag.read_labelled_frames(str(bag))
    frames = evaluate_bag.read_labelled_frames(str(bag), '/front_camera/image_raw')
    assert len(frames) == 25 and frames.camera == '/front_camera/image_raw'


def _evaluate(*args, timeout=120):
    return subprocess.run([sys.executable, '-m', 'vlm_nav.cli.main', 'evaluate-bag', *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize('shape', ['humble', 'realsense', 'split'])
def test_evaluate_bag_cli_scores_robot_shaped_bags(shape, tiny_llava_dir, tmp_path):
    bag = robot_shaped(tmp_path / shape, shape, bad_frames=(0,))
    out = tmp_path / 'eval'
    result = _evaluate(str(bag), '--model', tiny_llava_dir, '--max-frames', '2', '--threads',
                       '1', '--out', str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((out / 'eval.json').read_text())
    assert report['frames'] == 2 and report['skipped']['refused'] == 1
    assert 'Skipped: 1 frames refused' in (out / 'eval.md').read_text()
    assert '2 of 3 frames scored (1 refused, 0 without ground truth)' in result.stdout


@pytest.mark.parametrize('case', ['nothing_decodes', 'no_camera', 'two_cameras', 'missing'])
def test_evaluate_bag_errors_are_one_line(case, tmp_path):
    from std_msgs.msg import String

    from vlm_nav.testing.bags import write_bag
    bag = tmp_path / case
    if case == 'nothing_decodes':
        robot_shaped(bag, 'realsense', bad_frames=range(25))
        expected = (f'no frame of {bag} could be scored: of 25 frames on {REALSENSE}, 25 '
                    'refused (could not decode compressed image')
    elif case == 'no_camera':
        write_bag(str(bag), [('/sim/ground_truth', 1, String(data='{}'))])
        expected = f'{bag} has no camera stream'
    elif case == 'two_cameras':
        robot_shaped(bag, 'two_cameras')
        expected = f'{bag} has 2 cameras'
    else:
        expected = f'{bag} does not exist'
    result = _evaluate(str(bag))
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stderr.count('\n') == 1 and 'Traceback' not in result.stderr
    assert result.stderr.startswith(f'vlm-nav: error: {expected}'), result.stderr
    shown = _evaluate(str(bag), '--debug')
    assert shown.returncode != 0 and 'Traceback' in shown.stderr and 'BagError' in shown.stderr


@pytest.mark.ros
def test_record_default_topics_make_a_bag_every_distro_plays(ros_domain, probe, tmp_path):
    """
    Record the default topics (scan and odom too) as ros2 bag play on Humble to Kilted reads.

    Metadata version 8, offered QoS profiles as a string of numeric policies (the
    publishers' own: best-effort camera), a stored definition for every type.
    """
    from nav_msgs.msg import Odometry
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image, LaserScan
    scan = probe.node.create_publisher(LaserScan, 'scan', qos_profile_sensor_data)
    odom = probe.node.create_publisher(Odometry, 'odom', 10)
    probe.node.create_timer(0.1, lambda: (scan.publish(LaserScan(ranges=[1.0] * 8)),
                                          odom.publish(Odometry())))
    bag = tmp_path / 'defaults'
    camera = NodeSpec('camera_node', 'camera_node', {'width': 32, 'height': 32})
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    with Stack([camera], default_params_file(), echo=False):
        assert probe.wait_for(lambda: probe.messages('camera/image_raw'), 30.0)
        result = subprocess.run(
            [sys.executable, '-m', 'vlm_nav.cli.main', 'record', '-o', str(bag),
             '--duration', '3'], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    info = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert info['version'] == 8 and info['storage_identifier'] == 'mcap'
    topics = {t['topic_metadata']['name']: t for t in info['topics_with_message_count']}
    for name in ('/camera/image_raw', '/camera/camera_info', '/scan', '/odom'):
        assert topics[name]['message_count'] > 5, (name, topics.get(name))
    qos = topics['/camera/image_raw']['topic_metadata']['offered_qos_profiles']
    assert isinstance(qos, str)                      # Humble reads a string, not a list
    (profile,) = yaml.safe_load(qos)
    assert profile['reliability'] == 2 and isinstance(profile['history'], int)  # best effort
    with Bag(bag) as opened:
        assert opened.typestore_note == 'message definitions stored in the bag'
        assert opened.select_camera().topic == '/camera/image_raw'
