"""Replay: frames from real rosbag2 files (mcap and sqlite3) through bag_player_node into
vlm_node, as `vlm-nav bringup replay` and replay.launch.py do."""

import time

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
from vlm_nav_interfaces.srv import Ask

from vlm_nav.bags import write_bag
from vlm_nav.bringup import Stack
from vlm_nav.ros_image import rgb_to_image
from vlm_nav.stack import default_params_file, profile_nodes

pytestmark = pytest.mark.ros


def _frames(count=30, period_ns=100_000_000):
    from builtin_interfaces.msg import Time
    from vlm_nav.sim import sample_view
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
