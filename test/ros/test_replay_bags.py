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
Replay the bags real robots record through `vlm-nav bringup replay`, frames counted at vlm_node.

Humble's sqlite3 without definitions, a RealSense-style compressed camera with its
camera_info, a split bag, a USB webcam's YUYV and an industrial camera's Bayer frames
under another camera topic, two cameras (refused, then one picked with --camera-topic), and
the failures: no camera, every frame refused, nothing subscribed. The bags are written
here with rosbags (vlm_nav.testing.bags); vlm_node's /diagnostics says how many frames it
received.
"""

from pathlib import Path
import subprocess
import sys

from builtin_interfaces.msg import Time
from conftest import running_stack
import cv2
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.ros.image import rgb_to_image
from vlm_nav.testing.bags import write_bag, write_humble_bag

pytestmark = pytest.mark.ros

REALSENSE = '/camera/color/image_raw/compressed'
FRAMES = 20                     # at 10 Hz: a 2 s replay
LAUNCH_FILE = Path(__file__).resolve().parents[2] / 'launch' / 'replay.launch.py'
# `ros2 launch vlm_nav replay.launch.py ARG:=VALUE ...`, without needing the ros2 CLI
RUN_LAUNCH = """
import sys
from launch import LaunchService
from launch.actions import IncludeLaunchDescription
from launch.launch_description_sources import PythonLaunchDescriptionSource
service = LaunchService(argv=sys.argv[2:])
service.include_launch_description(IncludeLaunchDescription(
    PythonLaunchDescriptionSource(sys.argv[1]),
    launch_arguments=[a.split(':=', 1) for a in sys.argv[2:]]))
sys.exit(service.run())
"""


def _stamp(t: int) -> Time:
    return Time(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000)


def frames(topic: str = '/camera/image_raw', compressed: bool = False, size=(32, 24),
           count: int = FRAMES, broken: bool = False):
    """Yield (topic, time ns, message): count frames 0.1 s apart, size (width, height)."""
    for i in range(count):
        t = 1_000_000_000 + i * 100_000_000
        rgb = np.zeros((size[1], size[0], 3), np.uint8)
        rgb[:, : 4 + i % size[0]] = (200, 40, 10 * i % 250)
        if compressed:
            jpeg = cv2.imencode('.jpg', cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()
            msg = CompressedImage(format='jpeg', data=b'\xff\xd8 broken' if broken else jpeg)
            msg.header.stamp, msg.header.frame_id = _stamp(t), 'camera_color_optical_frame'
        else:
            msg = rgb_to_image(rgb, _stamp(t), 'camera')
        yield topic, t, msg


def camera_frames(encoding: str, count: int = FRAMES):
    """Yield (topic, time ns, message): a USB webcam's YUYV or an industrial camera's Bayer."""
    rng = np.random.default_rng(7)
    width, height = 32, 24
    channels = 2 if encoding == 'yuv422_yuy2' else 1
    for i in range(count):
        t = 1_000_000_000 + i * 100_000_000
        pixels = rng.integers(0, 256, (height, width * channels), np.uint8)
        msg = Image(height=height, width=width, encoding=encoding, step=width * channels,
                    data=pixels.tobytes())
        msg.header.stamp, msg.header.frame_id = _stamp(t), 'camera'
        yield '/usb_cam/image_raw', t, msg


def depth_frames(count: int = FRAMES):
    for i in range(count):
        t = 1_000_000_000 + i * 100_000_000 + 5
        msg = Image(height=24, width=32, encoding='16UC1', step=64,
                    data=np.full((24, 32), 700 + i, np.uint16).tobytes())
        msg.header.stamp, msg.header.frame_id = _stamp(t), 'camera_depth_optical_frame'
        yield '/camera/depth/image_rect_raw', t, msg


def realsense(path, broken: bool = False, depth: bool = False):
    info = CameraInfo(width=32, height=24, distortion_model='plumb_bob',
                      d=[0.1, 0.0, 0.0, 0.0, 0.0])
    messages = list(frames(REALSENSE, compressed=True, broken=broken))
    messages.append(('/camera/color/camera_info', 1_000_000_000, info))
    if depth:
        messages += list(depth_frames())
    write_bag(str(path), messages, 'mcap')
    return path


def bringup(bag, model: str, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'vlm_nav.cli.main', 'bringup', 'replay',
                           '--model', model, '--bag', str(bag), *extra],
                          capture_output=True, text=True, timeout=240)


def frames_at_vlm_node(probe) -> int:
    """Return the most frames vlm_node's /diagnostics said it received."""
    counts = [int(kv.value) for array in probe.messages('/diagnostics')
              for status in array.status if status.name == 'vlm_nav: vlm_node'
              for kv in status.values if kv.key == 'frames_received']
    return max(counts, default=0)


def vlm_node_values(probe, key: str) -> set:
    """Return every value of key in vlm_node's /diagnostics, once a frame had arrived."""
    return {kv.value for array in probe.messages('/diagnostics') for status in array.status
            if status.name == 'vlm_nav: vlm_node' for kv in status.values
            if kv.key == key and kv.value}


def _one_line(result) -> str:
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert 'Traceback' not in result.stdout + result.stderr, result.stdout[-3000:]
    assert result.stderr.count('\n') == 1, result.stderr
    return result.stderr.strip()


@pytest.mark.parametrize('shape', ['humble', 'realsense', 'split', 'yuyv', 'bayer'])
def test_bringup_replays_a_robot_bag_into_vlm_node(shape, ros_domain, probe, tiny_llava_dir,
                                                   tmp_path):
    bag = tmp_path / shape
    if shape == 'humble':
        write_humble_bag(str(bag), frames(), db_distro='')
        note = 'no message definitions stored; the humble typestore'
    elif shape == 'realsense':
        realsense(bag)
        note = 'message definitions stored in the bag'
    elif shape == 'split':
        write_bag(str(bag), frames(), 'sqlite3', split_every=7)
        note = 'split in 3 files'
    else:
        write_bag(str(bag), camera_frames('yuv422_yuy2' if shape == 'yuyv' else 'bayer_rggb8'))
        note = 'message definitions stored in the bag'
    probe.record(DiagnosticArray, '/diagnostics')
    result = bringup(bag, tiny_llava_dir)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert note in result.stdout, result.stdout[:2000]
    assert f'replay finished: {FRAMES} frames ({FRAMES} with a subscriber)' in result.stdout
    received = frames_at_vlm_node(probe)
    assert received >= FRAMES // 2, (received, result.stdout[-3000:])
    info = ('camera_info from /camera/color/camera_info' if shape == 'realsense'
            else 'camera_info made from the frame size')
    assert info in result.stdout


def test_two_cameras_are_listed_and_camera_topic_picks_one(ros_domain, probe,
                                                           tiny_llava_dir, tmp_path):
    bag = tmp_path / 'two'
    write_bag(str(bag), list(frames(REALSENSE, compressed=True)) +
              list(frames('/front_camera/image_raw', size=(48, 32))))
    line = _one_line(bringup(bag, tiny_llava_dir))
    assert line.startswith(f'vlm-nav: error: {bag} has 2 cameras: '), line
    assert f'{REALSENSE} (CompressedImage jpeg, {FRAMES} frames)' in line
    assert f'/front_camera/image_raw (Image rgb8, {FRAMES} frames)' in line
    assert '--camera-topic' in line
    probe.record(DiagnosticArray, '/diagnostics')
    result = bringup(bag, tiny_llava_dir, '--camera-topic', '/front_camera/image_raw')
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-3000:]
    assert frames_at_vlm_node(probe) >= FRAMES // 2
    # vlm_node's own account of the frames it got: the front camera's 48x32, never the 32x24
    assert vlm_node_values(probe, 'last_frame') == {'48x32 camera'}


def test_a_bag_whose_every_frame_is_refused_fails_with_the_players_line(
        ros_domain, tiny_llava_dir, tmp_path):
    bag = realsense(tmp_path / 'broken', broken=True)
    line = _one_line(bringup(bag, tiny_llava_dir))
    assert line.startswith(f'vlm-nav: error: every one of the {FRAMES} frames of {REALSENSE} '
                           f'in {bag} was refused (could not decode compressed image'), line


def _player(bag, **parameters) -> subprocess.CompletedProcess:
    command = [sys.executable, '-m', 'vlm_nav.bag_player_node', '--ros-args',
               '-p', f'bag:={bag}']
    for name, value in parameters.items():
        command += ['-p', f'{name}:={value}']
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_the_player_alone_fails_in_one_line(ros_domain, tmp_path):
    """Exit 1 with one line when there is no camera, or nothing subscribes (ros2 launch's case)."""
    empty = tmp_path / 'no_camera'
    write_bag(str(empty), list(depth_frames(2)))
    result = _player(empty)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f'bag_player_node: replay failed: {empty} has no camera stream')
    alone = realsense(tmp_path / 'alone')
    result = _player(alone, wait_for_subscribers_s=1.0)
    assert result.returncode == 1 and 'Traceback' not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        'bag_player_node: replay failed: nothing subscribed to /camera/image_raw within '
        f'wait_for_subscribers_s (1 s), so no frame of {alone} was played: start vlm_node '
        '(or the stack) in the same ROS domain, or raise wait_for_subscribers_s')


def test_depth_and_camera_info_pass_through(ros_domain, probe, tmp_path):
    bag = realsense(tmp_path / 'rgbd', depth=True)
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    probe.record(Image, 'camera/depth/image_raw', qos_profile_sensor_data)
    probe.record(CameraInfo, 'camera/camera_info', qos_profile_sensor_data)
    player = NodeSpec('bag_player_node', 'bag_player_node', {
        'bag': str(bag), 'depth_topic': 'camera/depth/image_raw', 'restamp': False})
    log = tmp_path / 'bag_player_node.log'
    with running_stack([player], tmp_path) as stack:
        assert probe.wait_for(lambda: stack.dead() == ['bag_player_node'], 30.0)
        assert stack.processes['bag_player_node'].returncode == 0, log.read_text()
    images = probe.messages('camera/image_raw')
    depths = probe.messages('camera/depth/image_raw')
    infos = probe.messages('camera/camera_info')
    counts = (len(images), len(depths))
    assert min(counts) >= FRAMES // 2, counts
    assert images[0].encoding == 'rgb8' and images[0].header.frame_id == \
        'camera_color_optical_frame'
    assert depths[0].encoding == '16UC1' and np.frombuffer(
        bytes(depths[0].data), np.uint16)[0] >= 700
    # each frame's camera_info carries its stamp (restamp off: the bag's) and is the bag's
    stamps = {(i.header.stamp.sec, i.header.stamp.nanosec) for i in infos}
    assert (images[0].header.stamp.sec, images[0].header.stamp.nanosec) in stamps
    assert (infos[0].width, infos[0].height, infos[0].distortion_model) == (32, 24, 'plumb_bob')
    assert list(infos[0].d)[0] == 0.1


def test_replay_launch_ends_with_the_player(ros_domain, tmp_path):
    """
    Run replay.launch.py for real where launch_ros and an installed vlm_nav are found.

    The launch ends after the bag with exit code 0, and at once with exit code 1 when the
    player fails; every other node is stopped either way.
    """
    pytest.importorskip('launch_ros')
    from ament_index_python.packages import get_package_share_directory, PackageNotFoundError
    try:
        get_package_share_directory('vlm_nav')
    except PackageNotFoundError:
        pytest.skip('vlm_nav is not installed in an ament prefix (colcon build)')

    def launch(*arguments):
        return subprocess.run([sys.executable, '-c', RUN_LAUNCH, str(LAUNCH_FILE),
                               *arguments], capture_output=True, text=True, timeout=180)
    played = launch(f'bag:={realsense(tmp_path / "realsense")}')
    assert played.returncode == 0, played.stdout[-3000:] + played.stderr[-3000:]
    output = played.stdout + played.stderr
    assert f'replay finished: {FRAMES} frames' in output
    assert "sending signal 'SIGINT' to process[vlm_node" in output
    write_bag(str(tmp_path / 'no_camera'), list(depth_frames(2)))
    failed = launch(f'bag:={tmp_path / "no_camera"}')
    output = failed.stdout + failed.stderr
    assert failed.returncode == 1, output[-3000:]
    assert 'bag_player_node: replay failed: ' in output and 'has no camera stream' in output
    assert 'process has finished cleanly' in output.split('replay failed')[-1]
