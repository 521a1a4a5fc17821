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
One vlm_node serving two cameras (namespaces 'front' and 'rear') with one model.

Both get answers on their own frames, and requests that arrive together run as one batch
(diagnostics count it). Real processes over DDS, a small LLaVA of real classes.
"""

import math
import time

from conftest import Probe, running_stack
from diagnostic_msgs.msg import DiagnosticArray
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.ros.image import rgb_to_image
from vlm_nav_interfaces.srv import Ask, Describe, Observe

pytestmark = pytest.mark.ros

CAMERAS = ('front', 'rear')
TARGETS = ('red ball', 'door', 'blue box', 'table')


@pytest.fixture(scope='module')
def stack(ros_domain, tiny_llava_dir, tmp_path_factory):
    spec = NodeSpec('vlm_node', 'vlm_node', {
        'model': tiny_llava_dir, 'threads': 1, 'cameras': list(CAMERAS),
        'inference_timeout_s': 30.0, 'max_frame_age_s': 5.0})
    with running_stack([spec], tmp_path_factory.mktemp('logs')) as running:
        yield running


@pytest.fixture(scope='module')
def cameras(stack):
    """Publish a different random frame on each camera's topic at 10 Hz."""
    probe = Probe('batching_probe')
    probe.record(DiagnosticArray, '/diagnostics')
    rng = np.random.default_rng(4)
    for camera in CAMERAS:
        publisher = probe.node.create_publisher(Image, f'{camera}/camera/image_raw',
                                                qos_profile_sensor_data)
        rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)

        def publish(publisher=publisher, rgb=rgb, camera=camera):
            stamp = probe.node.get_clock().now().to_msg()
            publisher.publish(rgb_to_image(rgb, stamp, f'{camera}_optical'))
        probe.node.create_timer(0.1, publish)
    yield probe
    probe.close()


def _ready(probe: Probe) -> None:
    for camera in CAMERAS:
        ok = probe.wait_for(lambda: probe.call(
            Ask, f'{camera}/vlm_nav/ask',
            Ask.Request(question='Is the path ahead clear?', choices=['yes', 'no']),
            timeout=30.0).success, timeout=90.0)
        assert ok, f'{camera}: vlm_node never answered'


def test_two_cameras_one_model_batched(cameras):
    probe = cameras
    _ready(probe)
    clients = {c: probe.node.create_client(Observe, f'{c}/vlm_nav/observe') for c in CAMERAS}
    for client in clients.values():
        assert client.wait_for_service(timeout_sec=10.0)
    # Requests from both cameras at once: they queue while the model is busy, then share
    # forward passes.
    calls = []
    for target in TARGETS:
        for camera in CAMERAS:
            future = clients[camera].call_async(Observe.Request(target=target))
            calls.append((camera, target, future))
    assert probe.wait_for(lambda: all(f.done() for _, _, f in calls), 60.0)
    for camera, target, future in calls:
        response = future.result()
        assert response.success, f'{camera} {target}: {response.message}'
        obs = response.observation
        assert obs.header.frame_id == f'{camera}_optical'   # its own camera's frame
        assert obs.target == target
        assert math.isclose(sum(obs.bearing_probs), 1.0, abs_tol=1e-4)
    # Both cameras saw different pictures: the same question gets different answers.
    first = {camera: future.result().observation for camera, target, future in calls
             if target == TARGETS[0]}
    assert list(first['front'].bearing_probs) != list(first['rear'].bearing_probs)

    diagnostics = probe.next_diagnostics('vlm_node')
    batches, batched = int(diagnostics['batches']), int(diagnostics['batched_requests'])
    print(f'batches {batches}, requests {batched}, largest {diagnostics["largest_batch"]}')
    assert int(diagnostics['largest_batch']) > 1
    assert batched >= len(calls) and batches < batched


def test_observe_is_answered_between_a_descriptions_decoding_steps(cameras):
    """
    Answer an Observe that arrives during a long description between two decoding steps.

    A long description holds the one model for many decoding steps; the Observe is not
    answered after the whole description.
    """
    probe = cameras
    _ready(probe)
    describe = probe.node.create_client(Describe, 'front/vlm_nav/describe')
    observe = probe.node.create_client(Observe, 'rear/vlm_nav/observe')
    assert describe.wait_for_service(timeout_sec=10.0)
    assert observe.wait_for_service(timeout_sec=10.0)
    started = time.monotonic()
    description = describe.call_async(Describe.Request(max_new_tokens=400))
    answered = []                    # (seconds after the Describe call, success)
    while not description.done() and time.monotonic() - started < 60.0:
        t0 = time.monotonic()
        future = observe.call_async(Observe.Request(target=TARGETS[len(answered) % 4]))
        assert probe.wait_for(future.done, 30.0)
        answered.append((time.monotonic() - started, time.monotonic() - t0,
                         future.result().success))
    assert probe.wait_for(description.done, 60.0)
    result = description.result()
    assert result.success, result.message
    generation_s = result.description.inference_latency_s
    during = [(at, took) for at, took, ok in answered if ok and at < generation_s]
    print(f'description {generation_s:.2f} s; Observes during it: '
          + ', '.join(f'{took * 1e3:.0f} ms' for _, took in during))
    assert len(during) >= 3, f'Observes waited for the description: {answered}'
    assert max(took for _, took in during) < generation_s / 2
    assert int(probe.next_diagnostics('vlm_node')['answered_mid_generation']) >= 3
