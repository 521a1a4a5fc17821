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
The served backend against a real `transformers serve` on loopback (the embedded model).

It answers directly and behind the real vlm_node over ROS; an unreachable or silent server
fails fast with a clear message. The first-token logprob arithmetic (used with vLLM, SGLang and
llama.cpp, whose logprobs `transformers serve` 5.24 does not return) is tested on its own.
"""

import json
import math
import socket
import subprocess
import sys
import threading
import time

from conftest import Probe, running_stack
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image

from vlm_nav.bench.served import free_port, local_server
from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.models.base import ModelLoadError
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.hf_backend import HFBackend
from vlm_nav.models.served import (choice_probs_from_top_logprobs, match_choice, parse_spec,
                                   SCORING_MATCH, ServedBackend, ServedError)
from vlm_nav.perception import vocabulary
from vlm_nav.ros.image import rgb_to_image
from vlm_nav.sim.dataset import sample_view
from vlm_nav_interfaces.srv import Ask, Observe

TARGET = 'red ball'


@pytest.fixture(scope='module')
def server(tmp_path_factory):
    log = tmp_path_factory.mktemp('serve') / 'server.log'
    with local_server(str(EMBEDDED_MODEL_DIR), threads=1, log_path=str(log)) as spec:
        yield spec


@pytest.fixture(scope='module')
def views():
    # Layout 1: a room the embedded model never trained on the views of (view seeds differ).
    return [sample_view(1, v)[0] for v in range(8)]


# ---- pure parts ------------------------------------------------------------------------
def test_spec_parsing():
    url, options = parse_spec('openai://10.0.0.5:8000/v1?model=org/vlm&timeout=2&retries=3')
    assert url == 'http://10.0.0.5:8000/v1'
    assert options == {'model': 'org/vlm', 'timeout': '2', 'retries': '3'}
    assert parse_spec('openai+https://gpu.example/v1')[0] == 'https://gpu.example/v1'
    assert parse_spec('http://127.0.0.1:9000')[0] == 'http://127.0.0.1:9000/v1'
    for bad, why in [('openai:///v1', 'no host'), ('openai://h:99999/v1', '(?i)port'),
                     ('openai://h/v1?modle=x', 'unknown option'), ('ftp://h/v1', 'scheme')]:
        with pytest.raises(ValueError, match=why):
            parse_spec(bad)
    with pytest.raises(ModelLoadError, match='timeout'):
        ServedBackend('openai://h/v1?timeout=0')


def test_first_token_logprobs_become_choice_probabilities():
    top = [('yes', math.log(0.6)), (' Yes', math.log(0.1)), ('no', math.log(0.2)),
           ('maybe', math.log(0.05))]
    probs = choice_probs_from_top_logprobs(['yes', 'no'], top)
    assert probs == pytest.approx([0.7 / 0.9, 0.2 / 0.9])
    # A choice absent from the top tokens gets at most the smallest listed probability.
    probs = choice_probs_from_top_logprobs(['left', 'center', 'right'],
                                           [('left', math.log(0.9)), ('center', math.log(0.08))])
    assert probs[0] > probs[1] >= probs[2] > 0
    assert sum(probs) == pytest.approx(1.0)
    # Multi-token choices: a shared first token is split evenly; a unique one decides.
    probs = choice_probs_from_top_logprobs(['red ball', 'red box', 'blue box'],
                                           [('red', math.log(0.8)), ('blue', math.log(0.2))])
    assert probs == pytest.approx([0.4, 0.4, 0.2])
    assert choice_probs_from_top_logprobs(['yes', 'no'], [('hello', -0.1)]) is None


def test_generated_reply_matches_a_choice():
    assert match_choice(['yes', 'no'], 'Yes.') == 0
    assert match_choice(['near', 'far'], ' far away') == 1
    assert match_choice(['red ball', 'red'], 'red ball, left') == 0
    assert match_choice(['left', 'center', 'right'], 'it is on the right') == 2
    assert match_choice(['yes', 'no'], 'perhaps') is None


# ---- against a real server --------------------------------------------------------------
def test_served_answers_match_the_local_model(server, views):
    served = ServedBackend(server)
    served.load()
    assert served.model == str(EMBEDDED_MODEL_DIR)
    local = HFBackend(str(EMBEDDED_MODEL_DIR))
    local.load()
    questions = vocabulary.target_questions(TARGET)
    agree = total = same_text = 0
    for image in views:
        remote, here = served.score(image, questions), local.score(image, questions)
        for r, h in zip(remote, here):
            assert r.choices == h.choices and sum(r.probs) == pytest.approx(1.0)
            agree += r.best == h.best
            total += 1
        budget = 24
        same_text += (served.generate(image, vocabulary.DESCRIBE_PROMPT, budget)
                      == local.generate(image, vocabulary.DESCRIBE_PROMPT, budget))
    # Same weights, same prompt (the server applies the folder's chat template), lossless
    # PNG frames: greedy answers should agree almost always.
    assert agree / total >= 0.9, f'{agree}/{total} argmax agree'
    assert same_text >= 0.8 * len(views), f'{same_text}/{len(views)} descriptions equal'
    # transformers serve ignores `logprobs`: the backend says it fell back.
    values = served.diagnostics()
    assert served.scoring == SCORING_MATCH and 'not calibrated' in values['scoring']
    assert values['server_failed_requests'] == '0'
    assert int(values['server_requests']) == len(views) * (len(questions) + 1)


def test_unreachable_server_fails_fast_with_the_url_and_a_fix():
    port = free_port()      # nothing listens there
    spec = f'openai://127.0.0.1:{port}/v1?model=m&timeout=1&retries=2'
    started = time.monotonic()
    with pytest.raises(ModelLoadError) as err:
        ServedBackend(spec).load()
    took = time.monotonic() - started
    message = str(err.value)
    assert f'127.0.0.1:{port}' in message and 'Fix:' in message and '3 time(s)' in message
    # Refused at once: only the backoff between the 3 tries (0.5 s, 1 s, minus jitter).
    assert took < 5.0, took


def test_silent_server_times_out_within_the_budget(server, views):
    # A socket that accepts connections but never answers: reads time out.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        backend = ServedBackend(f'openai://127.0.0.1:{port}/v1?timeout=0.5&retries=1')
        started = time.monotonic()
        with pytest.raises(ModelLoadError, match=f'127.0.0.1:{port}/v1 did not answer'):
            backend.load()
        took = time.monotonic() - started
    # 2 tries of 0.5 s plus one backoff (<= 0.5 s), with slack for a loaded machine.
    assert 0.9 < took < 4.0, took
    # And a served model that stops answering mid-run: a clear ServedError per request.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as silent:
        silent.bind(('127.0.0.1', 0))
        silent.listen(16)
        ok = ServedBackend(server + '&timeout=0.5&retries=0')
        ok.load()
        ok.client = ok.client.with_options(base_url=f'http://127.0.0.1:'
                                           f'{silent.getsockname()[1]}/v1')
        with pytest.raises(ServedError, match='did not answer within 0.5 s'):
            ok.score(views[0], [(vocabulary.PATH_QUESTION, vocabulary.YES_NO)])
        assert ok.diagnostics()['server_failed_requests'] == '1'


# ---- behind the vlm_node, over ROS ---------------------------------------------------------
def _publish_frames(probe: Probe, images, stop: threading.Event) -> threading.Thread:
    publisher = probe.node.create_publisher(Image, 'camera/image_raw', qos_profile_sensor_data)

    def loop():
        i = 0
        while not stop.is_set():
            stamp = probe.node.get_clock().now().to_msg()
            publisher.publish(rgb_to_image(images[i % len(images)], stamp, 'camera'))
            i += 1
            time.sleep(0.2)
    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


@pytest.mark.ros
def test_vlm_node_answers_through_the_server(server, views, ros_domain, tmp_path):
    specs = [NodeSpec('vlm_node', 'vlm_node', {'model': server + '&timeout=10',
                                               'inference_timeout_s': 30.0})]
    with running_stack(specs, tmp_path):
        probe = Probe('served_probe')
        probe.record(DiagnosticArray, '/diagnostics')
        stop = threading.Event()
        _publish_frames(probe, views, stop)
        try:
            deadline = time.monotonic() + 90
            while True:
                ask = probe.call(Ask, 'vlm_nav/ask', Ask.Request(
                    question=vocabulary.PATH_QUESTION, choices=['yes', 'no']), timeout=60)
                if ask.success or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            assert ask.success, ask.message
            assert ask.answer in ('yes', 'no') and sorted(ask.scores) == [0.0, 1.0]
            assert ask.model_name == str(EMBEDDED_MODEL_DIR)
            free = probe.call(Ask, 'vlm_nav/ask', Ask.Request(
                question=vocabulary.DESCRIBE_PROMPT, max_new_tokens=24), timeout=60)
            assert free.success, free.message
            assert free.answer
            obs = probe.call(Observe, 'vlm_nav/observe', Observe.Request(target=TARGET),
                             timeout=60)
            assert obs.success, obs.message
            o = obs.observation
            assert o.bearing_labels == list(vocabulary.BEARINGS)
            assert sum(o.bearing_probs) == pytest.approx(1.0)
            assert 0.0 <= o.visible_prob <= 1.0 and o.inference_latency_s > 0
            assert probe.wait_for(lambda: 'generate-and-match' in (
                probe.diagnostics('vlm_node') or {}).get('scoring', ''), 10)
            values = probe.diagnostics('vlm_node')
            assert values['server'] == server.split('?')[0].replace('openai://', 'http://')
        finally:
            stop.set()
            probe.close()


@pytest.mark.ros
def test_vlm_node_reports_an_unreachable_server(ros_domain, tmp_path):
    port = free_port()
    spec = f'openai://127.0.0.1:{port}/v1?model=m&timeout=1&retries=1'
    with running_stack([NodeSpec('vlm_node', 'vlm_node', {'model': spec})], tmp_path):
        probe = Probe('unreachable_probe')
        probe.record(DiagnosticArray, '/diagnostics')
        try:
            def error_reported():
                values = probe.diagnostics('vlm_node')
                return values is not None and values['_level'] == DiagnosticStatus.ERROR
            # Node start-up plus one refused try and one backoff: well inside 60 s.
            assert probe.wait_for(error_reported, 60), probe.diagnostics('vlm_node')
            assert f'127.0.0.1:{port}' in probe.diagnostics('vlm_node')['_message']
            reply = probe.call(Ask, 'vlm_nav/ask', Ask.Request(
                question='Is the path ahead clear?', choices=['yes', 'no']))
            assert not reply.success
            assert 'cannot reach the model server' in reply.message
            assert f'127.0.0.1:{port}' in reply.message
        finally:
            probe.close()


def test_doctor_checks_and_profiles_a_served_model(server):
    run = subprocess.run([sys.executable, '-m', 'vlm_nav.cli.main', 'doctor', '--json',
                          '--profile', '--model', server],
                         capture_output=True, text=True, timeout=240)
    checks = {c['name']: c for c in json.loads(run.stdout)['checks']}
    assert checks['model']['status'] == 'ok', checks['model']
    assert checks['model']['data']['served_model'] == str(EMBEDDED_MODEL_DIR)
    profile = checks['profile']
    assert profile['status'] == 'ok', profile
    assert profile['data']['backend'] == 'ServedBackend'
    assert profile['data']['decision_ms'] > 0
    assert profile['data']['scoring'].startswith('generate-and-match')
    # A server that is not there: the model check fails with the URL and a fix.
    port = free_port()
    run = subprocess.run([sys.executable, '-m', 'vlm_nav.cli.main', 'doctor', '--json', '--model',
                          f'openai://127.0.0.1:{port}/v1?retries=0'],
                         capture_output=True, text=True, timeout=240)
    model = {c['name']: c for c in json.loads(run.stdout)['checks']}['model']
    assert model['status'] == 'fail' and f'127.0.0.1:{port}' in model['detail']
    assert 'transformers serve' in model['fix'] and run.returncode == 1
