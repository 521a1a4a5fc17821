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

"""`vlm-nav doctor` run as a user would (a subprocess), on this machine's real state."""

import json
import os
import platform
import subprocess
import sys

import pytest

from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR

STATUSES = {'ok', 'warn', 'fail'}


def doctor(*args: str, env=None, timeout: float = 240):
    run = subprocess.run([sys.executable, '-m', 'vlm_nav.cli.main', 'doctor', *args],
                         capture_output=True, text=True, timeout=timeout,
                         env=dict(os.environ, **(env or {})))
    return run


def by_name(report):
    return {c['name']: c for c in report['checks']}


def test_json_report_on_this_machine():
    run = doctor('--json')
    report = json.loads(run.stdout)
    checks = by_name(report)
    assert set(checks) == {'python', 'packages', 'gpu', 'ram', 'ros', 'dds', 'camera',
                           'interfaces', 'model'}
    for check in report['checks']:
        assert check['status'] in STATUSES
        assert check['detail']
        if check['status'] != 'ok':
            assert check['fix'], f"{check['name']} has a problem but no fix line"
    assert checks['python']['data']['version'] == platform.python_version()
    assert checks['packages']['data']['versions']['torch'].startswith(
        __import__('torch').__version__.split('+')[0])
    assert checks['interfaces']['status'] == 'ok'
    assert 'vlm_nav_interfaces' in checks['interfaces']['detail']
    assert checks['ram']['data']['total_bytes'] > checks['ram']['data']['available_bytes'] > 0
    # The embedded model: supported, and a few MB fit anywhere.
    model = checks['model']
    assert model['status'] == 'ok', model
    assert model['data']['resolved'] == str(EMBEDDED_MODEL_DIR)
    assert model['data']['family'].startswith('llava')
    precisions = model['data']['precisions']
    assert set(precisions) == {'float32', 'bfloat16', 'float16', 'int8'}    # int8: on a CPU
    assert all(p['fits'] for p in precisions.values())
    assert precisions['float32']['total_bytes'] >= 2 * precisions['bfloat16']['total_bytes'] * 0.99
    # Exit code follows the verdict.
    assert report['ok'] == (report['counts']['fail'] == 0)
    assert run.returncode == (0 if report['ok'] else 1), run.stderr[-2000:]


def test_settings_that_will_hurt_are_flagged_with_a_fix():
    run = doctor('--json', env={'FASTDDS_BUILTIN_TRANSPORTS': 'UDPv4', 'ROS_DOMAIN_ID': '300',
                                'FASTDDS_DEFAULT_PROFILES_FILE': ''})
    checks = by_name(json.loads(run.stdout))
    assert checks['dds']['status'] == 'warn' and 'LARGE_DATA' in checks['dds']['fix']
    assert checks['ros']['status'] == 'warn' and 'ROS_DOMAIN_ID' in checks['ros']['fix']


def test_missing_model_folder_fails_with_a_fix(tmp_path):
    missing = str(tmp_path / 'no_such_model')
    run = doctor('--json', '--model', missing)
    assert run.returncode == 1
    model = by_name(json.loads(run.stdout))['model']
    assert model['status'] == 'fail'
    assert 'does not exist' in model['detail'] and model['fix']
    # The human form says the same, with the fix on its own line.
    text = doctor('--model', missing).stdout
    assert '[fail] model' in text and 'fix: give a folder' in text


def test_model_that_fits_at_no_precision_fails(tmp_path):
    # Only a config (no weights): a 70B-class LLaVA. The check reads the config alone.
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig
    text = LlamaConfig(vocab_size=32064, hidden_size=8192, intermediate_size=28672,
                       num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8)
    LlavaConfig(vision_config=CLIPVisionConfig(), text_config=text).save_pretrained(tmp_path)
    run = doctor('--json', '--model', str(tmp_path))
    model = by_name(json.loads(run.stdout))['model']
    assert model['status'] == 'fail', model
    assert 'fits at no precision' in model['detail'] and 'served model' in model['fix']
    bf16 = model['data']['precisions']['bfloat16']
    assert bf16['total_bytes'] > 100 * 2 ** 30 and not bf16['fits']
    assert run.returncode == 1


def test_cuda_asked_for_without_a_gpu_fails():
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has a GPU')
    run = doctor('--json', '--device', 'cuda:0')
    checks = by_name(json.loads(run.stdout))
    assert checks['gpu']['status'] == 'fail' and 'device:=cpu' in checks['gpu']['fix']
    assert run.returncode == 1


def test_profile_loads_the_model_and_times_a_decision():
    run = doctor('--json', '--profile')
    report = json.loads(run.stdout)
    profile = by_name(report)['profile']
    assert profile['status'] == 'ok', profile
    data = profile['data']
    assert data['load_s'] > 0 and data['first_decision_ms'] > 0 and data['decision_ms'] > 0
    assert data['peak_rss_bytes'] > 100 * 2 ** 20      # torch + transformers + the model
    assert set(data['answers'].values()) <= {'yes', 'no', 'left', 'center', 'right', 'near',
                                             'far'}
    assert data['backend'] == 'HFBackend'


def test_published_shape_prints_its_boards_row():
    run = doctor('--json', '--model', 'Qwen/Qwen2.5-VL-7B-Instruct')
    checks = by_name(json.loads(run.stdout))
    # This machine's fit depends on its memory; the shape is what the check reads.
    assert checks['model']['data']['shape'] == 'qwen2.5-vl-7b', checks['model']
    boards = checks['boards']
    assert boards['status'] == 'ok'
    (row,) = boards['data']['models']
    assert row['name'] == 'qwen2.5-vl-7b' and row['parameters'] > 8e9
    # 15.5 GiB in bf16: a 24 GB card and the 32/64 GB AGX Orins; int4 fits every board.
    assert row['fits']['bfloat16'] == ['AGX Orin 32 GB', 'AGX Orin 64 GB', '24 GB GPU']
    assert len(row['fits']['int4']) == len(boards['data']['boards'])
    text = doctor('--model', 'qwen3-vl').stdout
    for size in ('qwen3-vl-2b', 'qwen3-vl-4b', 'qwen3-vl-8b'):
        assert f'{size} (Qwen/' in text
    assert 'int4' in text and 'Orin Nano 8 GB' in text


def test_unknown_model_id_is_one_clear_line():
    run = doctor('--model', 'no-such-org/no-such-vlm', env={'HF_HUB_OFFLINE': '1'})
    assert run.returncode == 1
    lines = [line for line in run.stdout.splitlines() if '[fail] model' in line]
    assert len(lines) == 1 and 'unknown model' in lines[0], run.stdout
    assert 'boards' not in run.stdout
