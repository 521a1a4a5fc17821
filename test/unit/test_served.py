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
The served backend against a real `transformers serve` on loopback and a misbehaving one.

It answers directly and behind the real vlm_node over ROS; an unreachable or silent server
fails fast with a clear message. A server that answers anything but a chat completion
(test/served_fixtures.py: HTML, not JSON, no choices, no text, hangs, drops the
connection, a slow first byte, answers naming no choice) gives failed requests that name
the server and what came back, counted by kind, never an answer. The first-token logprob
arithmetic (used with vLLM, SGLang and llama.cpp, whose logprobs `transformers serve` 5.24
does not return) is tested on its own and against the fake server's logprobs.
"""

import json
import math
import re
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
from served_fixtures import FakeServer, MODEL

from vlm_nav.bench.served import free_port, local_server
from vlm_nav.bringup.profiles import NodeSpec
from vlm_nav.models.base import ModelLoadError
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.hf_backend import HFBackend
from vlm_nav.models.served import (choice_probs_from_top_logprobs, FAILURE_KINDS, InvalidReply,
                                   match_choice, parse_completion, parse_model_list,
                                   parse_spec, request_budget_s, SCORING_LOGPROBS,
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
    assert values['server_failed_requests'] == '0' and values['server_state'] == 'ok'
    # One question at load (how the server scores), then each view's questions and text.
    assert int(values['server_requests']) == 1 + len(views) * (len(questions) + 1)


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


def test_silent_server_times_out_within_the_budget(views):
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
    with FakeServer(hang_s=10) as fake:
        backend = ServedBackend(fake.spec(timeout=0.5, retries=0))
        backend.load()
        fake.mode = 'hang'
        with pytest.raises(ServedError, match='did not answer POST /chat/completions within '
                                              '0.5 s') as err:
            backend.score(views[0], [(vocabulary.PATH_QUESTION, vocabulary.YES_NO)])
        assert err.value.kind == 'timeout'
        values = backend.diagnostics()
        assert values['server_failed_requests'] == '1' and values['server_failed_timeout'] == '1'


# ---- a server that misbehaves ----------------------------------------------------------
def test_replies_are_parsed_strictly():
    good = json.dumps({'choices': [{'message': {'content': 'yes'}, 'logprobs': {'content': [
        {'token': 'yes', 'logprob': -0.1, 'top_logprobs': [
            {'token': 'yes', 'logprob': -0.1}, {'token': 'no', 'logprob': -2.5}]}]}}]}).encode()
    text, top = parse_completion('application/json; charset=utf-8', good)
    assert text == 'yes' and top == [('yes', -0.1), ('no', -2.5)]
    assert parse_completion('application/json', good, logprobs=False) == ('yes', None)
    for content_type, body, why in [
            ('text/html', b'<html></html>', 'not JSON'),
            ('application/json', b'<html></html>', 'not JSON'),
            ('application/json', b'{"foo": 1}', 'no "choices"'),
            ('application/json', b'[1, 2]', 'no "choices"'),
            ('application/json', b'{"choices": []}', 'no "choices"'),
            ('application/json', b'{"choices": [{"message": {}}]}', 'no message text'),
            ('application/json', b'{"choices": [{"message": {"content": 3}}]}', 'no message'),
            ('application/json', b'{"choices": [{"message": {"content": "y"}, "logprobs": '
             b'{"content": []}}]}', 'logprobs'),
            ('application/json', b'{"choices": [{"message": {"content": "y"}, "logprobs": '
             b'{"content": [{"token": "y", "logprob": NaN}]}}]}', 'logprobs')]:
        with pytest.raises(InvalidReply, match=why):
            parse_completion(content_type, body)
    assert parse_model_list('application/json', b'{"data": [{"id": "m"}]}') == ['m']
    for body in (b'{"data": null}', b'{"data": [{"name": "m"}]}', b'{"object": "list"}'):
        with pytest.raises(InvalidReply, match='no "data" list'):
            parse_model_list('application/json', body)
    # The longest a request may take: each try's timeout and the waits between them.
    assert request_budget_s(2.0, 1) == pytest.approx(4.5)
    assert request_budget_s(1.0, 0) == pytest.approx(1.0)
    assert request_budget_s(1.0, 2) == pytest.approx(4.5)


# mode -> (kind of failure, what the message shows of the reply)
BROKEN = {
    'html': ('not_completion', 'text/html; charset=utf-8 that is not a chat completion'),
    'not_json': ('not_completion', "'upstream said: everything is fine'"),
    'foo': ('not_completion', """no "choices"): '{"foo": 1}'"""),
    'no_choices': ('not_completion', 'no "choices"'),
    'no_text': ('not_completion', 'no message text'),
    'no_logprobs': ('no_logprobs', 'without the logprobs it returned'),
    'unmatched': ('no_match', "'purple', none of yes, no"),
    'http_500': ('http_error', 'HTTP 500'),
    'hang': ('timeout', 'did not answer POST /chat/completions within 0.5 s'),
    'slow': ('timeout', 'did not answer POST /chat/completions within 0.5 s'),
    'drop': ('dropped', 'closed the connection without answering'),
}


@pytest.mark.parametrize('mode', sorted(BROKEN))
def test_a_reply_that_is_no_answer_is_a_failed_request(mode, views):
    kind, shown = BROKEN[mode]
    questions = vocabulary.target_questions(TARGET)
    with FakeServer(delay_s=1.5, hang_s=10) as fake:
        backend = ServedBackend(fake.spec(timeout=0.5, retries=0))
        backend.load()
        assert backend.scoring == SCORING_LOGPROBS
        good = backend.score(views[0], questions)
        # The fake's first-token probabilities, per choice: never uniform.
        assert [a.best for a in good] == ['yes', 'center', 'far', 'yes']
        assert good[0].probs == pytest.approx([0.55 / 0.6, 0.05 / 0.6])
        assert backend.health() == ''
        fake.mode = mode
        with pytest.raises(ServedError) as err:
            backend.score(views[0], questions)
        message = str(err.value)
        assert err.value.kind == kind, message
        assert fake.base_url in message and shown in message and 'Fix: ' in message, message
        values = backend.diagnostics()
        assert backend.health() == values['server_last_error'] == message
        assert values['server_state'].startswith('failing'), values
        assert int(values[f'server_failed_{kind}']) >= 1
        assert int(values['server_failed_requests']) == sum(
            int(values[f'server_failed_{k}']) for k in FAILURE_KINDS)
        if mode not in ('no_logprobs', 'unmatched'):      # free text fails the same way
            with pytest.raises(ServedError, match=re.escape(shown)):
                backend.generate(views[0], vocabulary.DESCRIBE_PROMPT, 8)
        # The server is healthy again: so is the backend, the error cleared.
        fake.mode = 'good'
        assert [a.best for a in backend.score(views[0], questions)] == [
            'yes', 'center', 'far', 'yes']
        values = backend.diagnostics()
        assert backend.health() == '' and values['server_last_error'] == ''
        assert values['server_state'] == 'ok'
        assert int(values[f'server_failed_{kind}']) >= 2        # counts stay


def test_without_logprobs_an_answer_naming_no_choice_is_a_failed_request(views):
    with FakeServer(mode='no_logprobs') as fake:
        backend = ServedBackend(fake.spec(timeout=2, retries=0))
        backend.load()
        assert backend.scoring == SCORING_MATCH
        answers = backend.score(views[0], vocabulary.target_questions(TARGET))
        assert [a.probs for a in answers] == [[1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0],
                                              [1.0, 0.0]]
        fake.mode = 'unmatched'
        with pytest.raises(ServedError, match="with 'purple', none of yes, no") as err:
            backend.score(views[0], [(vocabulary.PATH_QUESTION, vocabulary.YES_NO)])
        assert err.value.kind == 'no_match'
        # A slow first byte inside the timeout is only slow.
        fake.mode, fake.delay_s = 'slow', 0.3
        started = time.monotonic()
        assert backend.score(views[0], [(vocabulary.PATH_QUESTION, vocabulary.YES_NO)])[
            0].best == 'yes'
        assert time.monotonic() - started >= 0.3 and backend.health() == ''


@pytest.mark.parametrize('mode, shown', [
    ('models_html', 'GET /models with HTTP 200 text/html that is not an OpenAI model list'),
    ('html', 'POST /chat/completions with HTTP 200 text/html; charset=utf-8'),
    ('foo', """(no "choices"): '{"foo": 1}'"""),
    ('hang', 'did not answer GET /models within 0.5 s'),
    ('drop', 'closed the connection without answering GET /models'),
])
def test_load_refuses_a_server_that_gives_no_answers(mode, shown):
    with FakeServer(mode=mode, hang_s=10) as fake:
        with pytest.raises(ModelLoadError) as err:
            ServedBackend(fake.spec(timeout=0.5, retries=0)).load()
        message = str(err.value)
        assert fake.base_url in message and shown in message and 'Fix: ' in message, message
        assert MODEL not in message or mode != 'models_html'


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
    assert checks['served_budget']['status'] == 'ok', checks['served_budget']
    # A server that is not there: the model check fails with the URL and a fix.
    port = free_port()
    run = subprocess.run([sys.executable, '-m', 'vlm_nav.cli.main', 'doctor', '--json', '--model',
                          f'openai://127.0.0.1:{port}/v1?retries=0'],
                         capture_output=True, text=True, timeout=240)
    model = {c['name']: c for c in json.loads(run.stdout)['checks']}['model']
    assert model['status'] == 'fail' and f'127.0.0.1:{port}' in model['detail']
    assert 'transformers serve' in model['fix'] and run.returncode == 1


def _doctor(spec: str, profile: bool = False):
    """Run doctor's checks in-process; return ({name: check}, exit code)."""
    from vlm_nav.cli.doctor import report, run_checks
    checks = run_checks(spec, profile=profile)
    return {c.name: c for c in checks}, 0 if report(checks)['ok'] else 1


def test_doctor_says_what_the_node_says_about_a_server():
    port = free_port()
    spec = f'openai://127.0.0.1:{port}/v1?retries=0'
    with pytest.raises(ModelLoadError) as err:
        ServedBackend(spec).load()
    checks, code = _doctor(spec)
    node_says, _, fix = str(err.value).partition('. Fix: ')
    assert checks['model'].status == 'fail' and checks['model'].detail == node_says
    assert fix in checks['model'].fix and 'server_retry_max_s' in checks['model'].fix
    assert code == 1
    # A model list with broken chat: the model check fails as vlm_node's load does.
    with FakeServer(mode='html') as fake:
        checks, code = _doctor(fake.spec(retries=0), profile=True)
        assert checks['model'].status == 'fail' and code == 1
        assert 'POST /chat/completions' in checks['model'].detail
        assert 'text/html' in checks['model'].detail
        assert checks['profile'].status == 'fail'


def test_doctor_profile_fails_on_answers_that_are_not_answers():
    with FakeServer() as fake:
        checks, code = _doctor(fake.spec(), profile=True)
        assert code == 0 and checks['profile'].status == 'ok', checks['profile']
        assert checks['model'].data['scoring'] == SCORING_LOGPROBS
        assert checks['served_budget'].status == 'ok'
        # Answers naming none of the choices: the decision fails, with the server's URL.
        fake.mode = 'unmatched'
        checks, code = _doctor(fake.spec(), profile=True)
        assert checks['model'].status == 'ok'       # it answers, just not the questions
        assert checks['profile'].status == 'fail' and code == 1
        assert fake.base_url in checks['profile'].detail and 'none of' in \
            checks['profile'].detail
        # Valid completions whose every probability is uniform: no information.
        fake.mode = 'uniform'
        checks, code = _doctor(fake.spec(), profile=True)
        assert checks['profile'].status == 'fail' and code == 1
        assert 'same probability' in checks['profile'].detail


def test_doctor_checks_the_request_budget_against_the_deadline():
    from vlm_nav.cli.doctor import check_served_budget, inference_timeout_s
    from vlm_nav.models.served import DEFAULT_RETRIES, DEFAULT_TIMEOUT_S
    deadline = inference_timeout_s()
    assert deadline == 5.0          # config/vlm_nav.yaml
    # The default spec fits vlm_node's default deadline.
    assert request_budget_s(DEFAULT_TIMEOUT_S, DEFAULT_RETRIES) <= deadline
    check = check_served_budget('openai://127.0.0.1:8000/v1', deadline)
    assert check.status == 'ok' and check.data['request_budget_s'] == 4.5
    check = check_served_budget('openai://127.0.0.1:8000/v1?timeout=5&retries=1', deadline)
    assert check.status == 'warn' and '10.5 s per request' in check.detail
    assert 'inference_timeout_s above 10.5' in check.fix
    assert check_served_budget('', deadline) is None


@pytest.mark.ros
def test_vlm_node_names_a_hung_server_not_a_busy_model(views, ros_domain, tmp_path):
    with FakeServer(hang_s=20) as fake:
        # A request may take 3 s, past the 1 s deadline: the node says so.
        specs = [NodeSpec('vlm_node', 'vlm_node', {'model': fake.spec(timeout=3, retries=0),
                                                   'inference_timeout_s': 1.0})]
        with running_stack(specs, tmp_path):
            probe = Probe('hung_probe')
            probe.record(DiagnosticArray, '/diagnostics')
            stop = threading.Event()
            _publish_frames(probe, views, stop)

            def question(what='ball'):
                # A new question each time: answers are cached per frame and question.
                return Ask.Request(question=f'Is there a {what}?', choices=['yes', 'no'])
            try:
                assert probe.wait_for(lambda: (probe.diagnostics('vlm_node') or {}).get(
                    '_message', '').startswith('ready; the model spec lets a request'), 30), \
                    probe.diagnostics('vlm_node')
                assert probe.diagnostics('vlm_node')['_level'] == DiagnosticStatus.WARN
                assert probe.call(Ask, 'vlm_nav/ask', question()).success
                fake.mode = 'hang'
                first = probe.call(Ask, 'vlm_nav/ask', question('box'))
                assert not first.success
                assert first.message.startswith(f'model server {fake.base_url} did not answer '
                                                'within inference_timeout_s (1.00 s)')
                again = probe.call(Ask, 'vlm_nav/ask', question('door'))
                assert not again.success and 'model busy' not in again.message
                assert again.message.startswith(f'model server {fake.base_url} has not '
                                                'answered a request for')

                def server_error():
                    values = probe.diagnostics('vlm_node') or {}
                    return values.get('_level') == DiagnosticStatus.ERROR and \
                        fake.base_url in values['_message']
                assert probe.wait_for(server_error, 10), probe.diagnostics('vlm_node')
                # The hung request times out (3 s); the good server answers again: OK.
                fake.mode = 'good'
                assert probe.wait_for(lambda: probe.call(Ask, 'vlm_nav/ask', question(
                    'plant')).success, 15)
                assert probe.wait_for(lambda: probe.diagnostics('vlm_node')['_level'] ==
                                      DiagnosticStatus.WARN, 5)
                values = probe.diagnostics('vlm_node')
                assert values['server_last_error'] == '' and values['server_failed_timeout'] == '1'
            finally:
                stop.set()
                probe.close()
