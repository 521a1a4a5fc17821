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
Every model family through the real vlm_node process over DDS.

One node per family (a small model of the family's real classes, random weights), every
operation through its service, and the unsupported ones answered success=false with the
reason. CLIP is loaded by hub id from a Hugging Face cache laid out on disk, the rest
from folders.
"""

from contextlib import ExitStack
import math
import os
import signal
import time
from typing import Dict, List

from conftest import claim_domain, Probe, release_domain
from hub_cache import into_hub_cache
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import default_params_file, NodeSpec
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.models import registry
from vlm_nav.ros.image import rgb_to_image
from vlm_nav.testing import tiny
from vlm_nav_interfaces.srv import Ask, Describe, Observe

pytestmark = pytest.mark.ros

THINGS = ['red ball', 'door', 'blue box']
HUB_ID = {'clip': 'vlm-nav-test/tiny-clip'}
# One family's node scores its closed-set questions in ONNX Runtime, int8 (exported at
# load; a failed export fails the load): every service must behave the same.
# Another caps its image size (max_image_pixels, a dynamic-resolution model).
NODE_OPTIONS = {'llava-phi3': {'runtime': 'onnxruntime_int8', 'dtype': 'int8'},
                'qwen2_5_vl': {'max_image_pixels': 32 * 24}}


def _camera_probe(domain: int, name: str) -> Probe:
    """
    Make a probe in ``domain`` that publishes a random 64x48 frame at 10 Hz.

    The frame goes out as camera/image_raw (a Context reads ROS_DOMAIN_ID when it is
    initialised).
    """
    saved = os.environ.get('ROS_DOMAIN_ID')
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    try:
        probe = Probe(f'families_probe_{name.replace("-", "_")}')
    finally:
        if saved is None:
            os.environ.pop('ROS_DOMAIN_ID')
        else:
            os.environ['ROS_DOMAIN_ID'] = saved
    publisher = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)
    rgb = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)

    def publish():
        publisher.publish(rgb_to_image(rgb, probe.node.get_clock().now().to_msg(), 'camera'))
    probe.node.create_timer(0.1, publish)
    return probe


@pytest.fixture(scope='module')
def family_nodes(family_model_dir, tmp_path_factory):
    """
    Map a family's name to a probe talking to that family's vlm_node.

    All nodes start at once, each in a ROS domain of its own (same service names, no
    crosstalk), so their slow imports overlap instead of adding up.
    """
    root = tmp_path_factory.mktemp('family_nodes')
    with ExitStack() as stack:
        domains = [claim_domain() for _ in tiny.BUILDERS]
        for domain in domains:
            stack.callback(release_domain, domain)
        probes: Dict[str, Probe] = {}
        stacks: List[Stack] = []
        for i, name in enumerate(sorted(tiny.BUILDERS)):
            model = family_model_dir(name)
            env = {'ROS_DOMAIN_ID': str(domains[i]), 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
            if name in HUB_ID:
                # Same from_pretrained path as a downloaded hub model, offline.
                into_hub_cache(model, root / 'hub', HUB_ID[name])
                env.update(HF_HUB_CACHE=str(root / 'hub'), HF_HUB_OFFLINE='1')
                model = HUB_ID[name]
            spec = NodeSpec('vlm_node', 'vlm_node', {'model': model, 'threads': 1,
                                                     'inference_timeout_s': 30.0,
                                                     'max_frame_age_s': 5.0,
                                                     **NODE_OPTIONS.get(name, {})})
            log_dir = root / name
            log_dir.mkdir()
            stacks.append(stack.enter_context(Stack(
                [spec], default_params_file(), env=env, echo=False, log_dir=str(log_dir))))
            probes[name] = _camera_probe(domains[i], name)
            stack.callback(probes[name].close)
        # Runs first on exit: all nodes shut down together, not one stop timeout after another.
        stack.callback(lambda: [p.send_signal(signal.SIGINT) for s in stacks
                                for p in s.processes.values() if p.poll() is None])
        yield probes
    for name in probes:
        print(f'--- {name}: vlm_node log ---')
        print((root / name / 'vlm_node.log').read_text()[-1500:])


# All nodes load at once: the first family asked waits for their start-ups together.
READY_S = 30.0 + 10.0 * len(tiny.BUILDERS)


def _ready(probe: Probe, timeout: float = READY_S) -> Ask.Response:
    deadline = time.monotonic() + timeout
    while True:
        response = probe.call(Ask, 'vlm_nav/ask', Ask.Request(
            question='What is in view?', choices=THINGS), timeout=30.0)
        if response.success or time.monotonic() > deadline:
            break
        assert 'loading' in response.message or 'frame' in response.message, response.message
        time.sleep(0.5)
    assert response.success, f'vlm_node never became ready: {response.message}'
    return response


def _distribution(scores, n):
    assert len(scores) == n
    assert all(0.0 <= p <= 1.0 for p in scores)
    assert math.isclose(sum(scores), 1.0, abs_tol=1e-4)


@pytest.mark.parametrize('name', sorted(tiny.BUILDERS))
def test_family_through_vlm_node(name, family_nodes):
    family = registry.BY_NAME[name]
    probe = family_nodes[name]
    first = _ready(probe)
    _distribution(first.scores, len(THINGS))
    assert first.answer in THINGS
    # A folder is named by its last part (the fixture names it after the family).
    assert first.model_name == HUB_ID.get(name, name)

    # Yes/no visibility: generative families and the ITM head answer it; CLIP can't.
    r = probe.call(Ask, 'vlm_nav/ask', Ask.Request(question='Is there a red ball?',
                                                   choices=['yes', 'no']))
    if family.backend == registry.GENERATIVE or registry.MATCH in family.operations:
        assert r.success, r.message
        _distribution(r.scores, 2)
    else:
        assert not r.success and 'no yes/no questions' in r.message, r.message

    # Free text.
    r = probe.call(Ask, 'vlm_nav/ask', Ask.Request(question='What is in view?',
                                                   max_new_tokens=4))
    if registry.ASK in family.operations:
        assert r.success, r.message
        assert isinstance(r.answer, str)
    else:
        assert not r.success
        assert 'cannot ask: it generates no text' in r.message, r.message

    # Describe (generation + a path question + per-object visibility).
    r = probe.call(Describe, 'vlm_nav/describe', Describe.Request(max_new_tokens=6),
                   timeout=60.0)
    if registry.DESCRIBE in family.operations:
        assert r.success, r.message
        assert r.description.model_name
        assert 0.0 <= r.description.path_clear_confidence <= 1.0
    else:
        assert not r.success and 'cannot describe' in r.message, r.message

    # Observe (the navigator's target questions).
    r = probe.call(Observe, 'vlm_nav/observe', Observe.Request(target='red ball'),
                   timeout=60.0)
    if registry.OBSERVE in family.operations:
        assert r.success, r.message
        obs = r.observation
        assert 0.0 <= obs.visible_prob <= 1.0 and 0.0 <= obs.path_clear_prob <= 1.0
        _distribution(list(obs.bearing_probs), len(obs.bearing_labels))
        _distribution(list(obs.distance_probs), len(obs.distance_labels))
    else:
        assert not r.success and 'cannot observe' in r.message, r.message
