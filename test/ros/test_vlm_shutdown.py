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
vlm_node stops cleanly on SIGINT with service calls in flight.

Exit code 0, no exception 'never retrieved' and no traceback on stderr, and no wait for
the calls' own deadlines. A real vlm_node process over DDS: the embedded model, as the
demo runs it, and a small LLaVA of real classes with random weights, whose descriptions
run to their token budget.
"""

import os
import signal
import subprocess
import time

import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import default_params_file, NodeSpec
from vlm_nav.bringup.supervisor import node_command
from vlm_nav.ros.image import rgb_to_image
from vlm_nav_interfaces.srv import Ask, Describe, Observe

pytestmark = pytest.mark.ros

FRAME_WAIT_S = 10.0         # an Observe for a frame that never comes waits this long


@pytest.fixture(params=['embedded', 'tiny_llava'])
def vlm_process(request, ros_domain, tmp_path):
    """Start vlm_node as `vlm-nav bringup` does, with stderr in a file of its own."""
    model = '' if request.param == 'embedded' else request.getfixturevalue('tiny_llava_dir')
    spec = NodeSpec('vlm_node', 'vlm_node', {'model': model, 'threads': 1,
                                             'frame_wait_s': FRAME_WAIT_S,
                                             'inference_timeout_s': 60.0,
                                             'max_frame_age_s': 30.0})
    err = tmp_path / 'vlm_node.err'
    with open(tmp_path / 'vlm_node.out', 'w') as stdout, open(err, 'w') as stderr:
        process = subprocess.Popen(node_command(spec, default_params_file()),
                                   env=dict(os.environ, PYTHONUNBUFFERED='1'),
                                   stdout=stdout, stderr=stderr)
    try:
        yield process, err
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print('--- vlm_node stderr ---')
        print(err.read_text()[-3000:])


def test_sigint_with_calls_in_flight_exits_quietly(vlm_process, probe):
    process, stderr = vlm_process
    camera = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    sent = []
    publishing = [True]

    def publish():
        if publishing[0]:
            stamp = probe.node.get_clock().now().to_msg()
            camera.publish(rgb_to_image(rgb, stamp, 'camera'))
            sent.append(stamp)
    probe.node.create_timer(0.1, publish)
    ready = probe.wait_for(lambda: probe.call(
        Ask, 'vlm_nav/ask', Ask.Request(question='Is the path ahead clear?',
                                        choices=['yes', 'no']), timeout=30.0).success, 120.0)
    assert ready, 'vlm_node never answered'

    # A description on the inference worker (the random model's runs for seconds), then,
    # with the frames stopped, an Observe waiting for a frame newer than the last one: in
    # flight when SIGINT comes.
    describe = probe.node.create_client(Describe, 'vlm_nav/describe')
    observe = probe.node.create_client(Observe, 'vlm_nav/observe')
    assert describe.wait_for_service(timeout_sec=10.0)
    assert observe.wait_for_service(timeout_sec=10.0)
    describe.call_async(Describe.Request(max_new_tokens=512))
    publishing[0] = False
    time.sleep(0.3)                 # a frame being published as they stopped is the last
    waiting = observe.call_async(Observe.Request(target='red ball', newer_than=sent[-1]))
    time.sleep(1.0)
    assert not waiting.done(), waiting.result()

    process.send_signal(signal.SIGINT)
    signalled = time.monotonic()
    assert process.wait(timeout=30.0) == 0
    took = time.monotonic() - signalled
    errors = stderr.read_text()
    assert 'never retrieved' not in errors
    assert 'Traceback' not in errors
    assert took < FRAME_WAIT_S - 2.0, f'exit took {took:.1f} s: it waited for the calls'
