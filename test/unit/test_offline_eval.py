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

import pytest
from rosbags.highlevel import AnyReader

from vlm_nav.bringup.profiles import default_params_file, NodeSpec
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.cli import evaluate_bag
from vlm_nav.models import load_backend

BAG = Path(__file__).resolve().parents[1] / 'data' / 'sim_turn'


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
