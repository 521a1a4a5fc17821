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
Decisions at camera rate: int8 loading, the packed scoring path, and the model benchmark.

The speed targets themselves live in `vlm-nav bench model` (bench/results/model_*), not
here; these tests check that what the benchmark measures is real and correct.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from vlm_nav.models import registry
from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR
from vlm_nav.models.hf_backend import HFBackend
from vlm_nav.perception import vocabulary

pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.fixture(scope='module')
def held_out():
    from vlm_nav.bench.model import held_out_frames
    return held_out_frames(12)


def test_int8_embedded_model_is_quantized_and_agrees_with_float32(held_out):
    import torch
    fp32 = HFBackend(str(EMBEDDED_MODEL_DIR), dtype='float32', runtime='torch')
    fp32.load()
    int8 = HFBackend(str(EMBEDDED_MODEL_DIR), dtype='int8', runtime='torch')
    int8.load()
    quantized = [m for m in int8.model.modules()
                 if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert len(quantized) >= 20          # every Linear of the vision tower, projector and LM
    assert not any(isinstance(m, (torch.nn.Linear, torch.nn.Embedding))
                   for m in int8.model.modules())
    agree = total = 0
    for frame in held_out:
        for target in ('red ball', 'blue box', 'door'):
            a = fp32.score(frame, vocabulary.target_questions(target))
            b = int8.score(frame, vocabulary.target_questions(target))
            agree += sum(x.best == y.best for x, y in zip(a, b))
            total += len(a)
    assert agree / total >= 0.9, f'int8 agrees with float32 on {agree}/{total} answers'


def test_onnxruntime_embedded_model_agrees_with_torch(held_out):
    """
    Runtime onnxruntime gives torch's probabilities; onnxruntime_int8 nearly its answers.

    onnxruntime_int8 (ONNX Runtime's dynamic quantization; what runtime auto picks for
    this model on a CPU) gives the same answers nearly everywhere, as torch's int8 does.
    """
    torch_fp32 = HFBackend(str(EMBEDDED_MODEL_DIR), runtime='torch')
    torch_fp32.load()
    assert torch_fp32.diagnostics()['scoring_runtime'] == 'torch'
    ort_fp32 = HFBackend(str(EMBEDDED_MODEL_DIR), runtime='onnxruntime')
    ort_fp32.load()
    assert ort_fp32.diagnostics()['scoring_runtime'] == 'onnxruntime'
    ort_int8 = HFBackend(str(EMBEDDED_MODEL_DIR))         # runtime auto
    ort_int8.load()
    assert ort_int8.diagnostics()['scoring_runtime'] == 'onnxruntime int8'
    agree = total = 0
    for frame in held_out:
        for target in ('red ball', 'green chair'):
            questions = vocabulary.target_questions(target)
            reference = torch_fp32.score(frame, questions)
            for a, b in zip(reference, ort_fp32.score(frame, questions)):
                np.testing.assert_allclose(a.probs, b.probs, atol=1e-4)
            answers = ort_int8.score(frame, questions)
            agree += sum(a.best == b.best for a, b in zip(reference, answers))
            total += len(answers)
    assert agree / total >= 0.9, f'int8 agrees with float32 on {agree}/{total} answers'


def test_runtime_auto_without_onnxruntime_scores_in_torch_and_says_why(monkeypatch):
    import sys
    from vlm_nav.models.base import ModelLoadError
    monkeypatch.setitem(sys.modules, 'onnxruntime', None)       # not installed
    backend = HFBackend(str(EMBEDDED_MODEL_DIR))
    backend.load()
    diagnostics = backend.diagnostics()
    assert diagnostics['scoring_runtime'] == 'torch'
    assert 'onnxruntime is not installed' in diagnostics['onnxruntime_skipped']
    frame = np.full((96, 96, 3), 127, dtype=np.uint8)
    assert len(backend.score(frame, vocabulary.target_questions('door'))) == 4
    # Asked for by name, it is an error with the fix.
    with pytest.raises(ModelLoadError, match='not installed.*runtime torch'):
        HFBackend(str(EMBEDDED_MODEL_DIR), runtime='onnxruntime').load()


def test_int8_refused_on_cuda_with_a_fix():
    from vlm_nav.models.base import ModelLoadError
    with pytest.raises(ModelLoadError, match='CPU|cuda|CUDA'):
        HFBackend(str(EMBEDDED_MODEL_DIR), device='cuda', dtype='int8').load()


def test_int8_memory_estimate_from_the_config():
    from transformers import AutoConfig
    from vlm_nav.bench.model import shape_config
    from vlm_nav.testing import tiny
    config = shape_config('llava-1.5-7b', tiny.build_tokenizer())
    est = registry.memory_by_dtype(config)
    # Nearly all of a 7 B model is Linear weights: int8 is about a quarter of float32.
    assert 0.24 < est['int8'].weights_bytes / est['float32'].weights_bytes < 0.3
    assert est['int8'].parameters == est['float32'].parameters > 6.5e9
    embedded = registry.memory_by_dtype(AutoConfig.from_pretrained(EMBEDDED_MODEL_DIR))
    assert embedded['int8'].weights_bytes < embedded['float32'].weights_bytes


def test_bench_model_runs_and_reports(tmp_path):
    """
    A minimal run of the real benchmark: every operation timed, ratios and memory reported.

    int8 accuracy beside float32 on the same held-out questions.
    """
    out = tmp_path / 'bench'
    proc = subprocess.run(
        [sys.executable, '-m', 'vlm_nav.bench.model', '--models', 'embedded',
         '--precisions', 'float32,int8,onnxruntime:int8', '--runs', '2', '--warmup', '1',
         '--frames', '2',
         '--threads', '1', '--accuracy-per-type', '10', '--out', str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    summary = json.loads((out / 'summary.json').read_text())
    configs = {c['precision']: c for c in summary['configs']}
    assert set(configs) == {'float32', 'int8', 'onnxruntime:int8'}
    for c in configs.values():
        assert set(c['operations']) >= {
            'prefill', 'decision', 'search_generate_parse', 'explore_generate_parse'}
        assert all(op['p50_ms'] > 0 and op['runs'] == 2 for op in c['operations'].values())
        assert c['ratios']['decision_over_prefill'] > 0
        assert c['rss_after_load_mb'] > c['rss_before_load_mb'] > 0
        assert set(c['accuracy']) >= {'visible', 'bearing', 'distance', 'path'}
        assert c['accuracy']['visible'] >= 0.7      # the trained model, not chance
    assert (out / 'results.csv').read_text().count('\n') == 1 + 3 * 2 * len(
        configs['float32']['operations'])
    assert (out / 'latency.png').stat().st_size > 10_000
    assert 'decision p50 ms' in proc.stdout


def test_random_shape_configs_match_the_published_sizes():
    from vlm_nav.bench.model import shape_config
    from vlm_nav.testing import tiny
    tok = tiny.build_tokenizer()
    sizes = {shape: registry.parameter_count(shape_config(shape, tok))
             for shape in ('smolvlm-256m', 'llava-phi3-mini', 'llava-1.5-7b')}
    assert 0.24e9 < sizes['smolvlm-256m'] < 0.27e9
    assert 4.0e9 < sizes['llava-phi3-mini'] < 4.2e9
    assert 7.0e9 < sizes['llava-1.5-7b'] < 7.1e9
    assert np.isfinite(list(sizes.values())).all()
