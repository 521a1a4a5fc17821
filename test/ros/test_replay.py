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
Replay: frames from real rosbag2 files (mcap and sqlite3) through bag_player_node.

Into vlm_node, as `vlm-nav bringup replay` and replay.launch.py do.
"""

import subprocess
import sys
import time

from builtin_interfaces.msg import Time
from conftest import REPO, running_stack
from geometry_msgs.msg import Twist
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import default_params_file, NodeSpec, profile_nodes
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.ros.image import rgb_to_image
from vlm_nav.testing.bags import write_bag
from vlm_nav_interfaces.srv import Ask

pytestmark = pytest.mark.ros


def _frames(count=30, period_ns=100_000_000):
    from vlm_nav.sim import sample_view     # deferred: vlm_nav.sim loads pybullet (heavy)
    for i in range(count):
        image, _truths, _clear = sample_view(layout_seed=3, view_seed=i, image_size=64)
        t = 1_000_000_000 + i * period_ns
        stamp = Time(sec=t // 1_000_000_000, nanosec=t % 1_000_000_000)
        yield '/camera/image_raw', t, rgb_to_image(image, stamp, 'camera')


@pytest.mark.parametrize('storage', ['mcap', 'sqlite3'])
def test_bag_frames_reach_the_model_restamped(storage, ros_domain, probe, tiny_llava_dir,
                                              tmp_path):
    bag = tmp_path / f'frames_{storage}'
    assert write_bag(str(bag), _frames(), storage) == {'/camera/image_raw': 30}
    specs = profile_nodes('replay', model=tiny_llava_dir, bag=str(bag))[:2]
    specs[0].parameters.update({'loop': True, 'rate': 2.0})
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    with Stack(specs, default_params_file(), echo=False, log_dir=str(tmp_path)):
        assert probe.wait_for(lambda: len(probe.messages('camera/image_raw')) >= 5, 30.0)
        frame = probe.messages('camera/image_raw')[-1]
        assert (frame.width, frame.height, frame.encoding) == (64, 64, 'rgb8')
        # restamped with the replay clock: fresh, not the recording's 1 s
        assert abs(frame.header.stamp.sec - time.time()) < 5
        pixels = np.frombuffer(bytes(frame.data), np.uint8)
        assert pixels.std() > 5                               # real rendered content
        deadline, response = time.monotonic() + 60, None
        while time.monotonic() < deadline:
            response = probe.call(Ask, 'vlm_nav/ask', Ask.Request(
                question='Is the path ahead clear?', choices=['yes', 'no']))
            if response.success:
                break
            time.sleep(0.5)
        assert response.success, response.message


def _replay(bag, **parameters):
    return NodeSpec('bag_player_node', 'bag_player_node', dict({'bag': str(bag)}, **parameters))


def test_replay_starts_with_the_first_frame(ros_domain, probe, tmp_path):
    """
    Publish the first frame too: publishers exist before it and playback waits for the subscriber.

    A player that made each publisher on its first message would lose that frame to
    discovery.
    """
    bag = tmp_path / 'ten'
    write_bag(str(bag), _frames(10), 'mcap')
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    log = tmp_path / 'bag_player_node.log'
    with running_stack([_replay(bag, restamp=False)], tmp_path) as stack:
        assert probe.wait_for(lambda: log.is_file() and 'replay finished' in log.read_text(),
                              30.0)
        assert probe.wait_for(lambda: stack.dead() == ['bag_player_node'], 10.0)
        assert stack.processes['bag_player_node'].returncode == 0
    stamps = [m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
              for m in probe.messages('camera/image_raw')]
    assert stamps and stamps[0] == pytest.approx(1.0), stamps     # the bag's first frame
    assert stamps == sorted(stamps) and len(stamps) >= 8, stamps  # best effort: most of them


def test_rate_set_during_a_replay(ros_domain, probe, tmp_path):
    """
    Apply a rate set with `ros2 param set` during a replay from the next message on.

    The player spins while it plays (30 frames at 10 Hz started at 0.05x: 60 s; at 20x:
    ~3 s).
    """
    bag = tmp_path / 'thirty'
    write_bag(str(bag), _frames(30), 'mcap')
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    with running_stack([_replay(bag, rate=0.05)], tmp_path) as stack:
        assert probe.wait_for(lambda: len(probe.messages('camera/image_raw')) >= 1, 20.0)
        request = SetParameters.Request(parameters=[Parameter(name='rate', value=ParameterValue(
            type=ParameterType.PARAMETER_DOUBLE, double_value=20.0))])
        response = probe.call(SetParameters, 'bag_player_node/set_parameters', request, 10.0)
        assert response.results[0].successful, response.results[0].reason
        changed = time.monotonic()
        assert probe.wait_for(lambda: stack.dead() == ['bag_player_node'], 20.0)
        # The frame already waited for plays at the old rate (up to 2 s), the rest at 20x.
        assert time.monotonic() - changed < 15.0
        assert stack.processes['bag_player_node'].returncode == 0


def test_bringup_replay_ends_cleanly_with_the_bag(ros_domain, tiny_llava_dir, tmp_path):
    """
    Stop the stack once the bag is over and exit 0 (`vlm-nav bringup replay`).

    The player's normal exit is the end of the input, not a dead node; a bag that can't be
    played still fails.
    """
    command = [sys.executable, '-m', 'vlm_nav.cli.main', 'bringup', 'replay', '--model',
               tiny_llava_dir]
    done = subprocess.run(command + ['--bag', str(REPO / 'test' / 'data' / 'sim_turn')],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert 'replay finished: 25 frames (25 with a subscriber)' in done.stdout
    empty = tmp_path / 'no_camera'
    write_bag(str(empty), [('/other', 1, Twist())], 'mcap')
    failed = subprocess.run(command + ['--bag', str(empty)], capture_output=True, text=True,
                            timeout=120)
    # Refused before any node starts: one line naming the bag, no traceback.
    assert failed.returncode == 1, failed.stdout[-3000:]
    expected = (f'vlm-nav: error: {empty} has no camera stream (sensor_msgs/msg/Image or '
                'CompressedImage); its topics: /other (Twist); record the camera topic too '
                '(e.g. `ros2 bag record /camera/image_raw`)')
    assert failed.stderr.strip() == expected, failed.stderr
    assert 'bag_player_node' not in failed.stdout
