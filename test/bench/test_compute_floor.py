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
vlm_nav/bench/compute_floor.py: a prefill's FLOPs follow from the architecture.

The GEMM rates it divides by are measured, for each runtime, on a real product. The
recorded run: bench/results/model_cpu/llava_phi3_mini/compute_floor/ (its run.log).
"""

import json

from vlm_nav.bench import compute_floor
from vlm_nav.bench.compute_floor import count_flops, main, measure


def test_phi3_prefill_flops_follow_the_parameter_count():
    counted = count_flops('llava-phi3-mini')
    seq = counted['sequence_tokens']
    assert counted['image_tokens'] == 576 and 576 < seq < 700
    # 2 FLOPs per weight per token: Phi-3-mini's 3.7 B linear weights (embeddings aside)
    per_token = counted['flops']['text_linear'] / seq / 2
    assert 3.5e9 < per_token < 3.9e9, per_token
    # CLIP ViT-L/336: ~0.3 B weights over 577 patches
    assert 0.28e9 < counted['flops']['vision_linear'] / 577 / 2 < 0.32e9
    assert counted['linear_flops'] + counted['attention_flops'] == \
        sum(counted['flops'].values())
    assert 4.5e12 < sum(counted['flops'].values()) < 5.2e12


def test_every_runtime_rate_is_measured_on_a_real_product():
    rates = measure(32, 64, 96, repeats=2, threads=1)
    assert set(rates) == {'torch:float32', 'torch:int8', 'onnxruntime:float32',
                          'onnxruntime:int8'}
    assert all(rate > 0.0 for rate in rates.values())


def test_floor_run_writes_summary_and_plot(tmp_path, monkeypatch):
    # the real count, but small matrices so the test stays quick
    monkeypatch.setattr(compute_floor, 'count_flops', lambda shape: dict(
        count_flops(shape), sequence_tokens=16, text_hidden=64, text_intermediate=128))
    measured = tmp_path / 'results.csv'
    measured.write_text('model,precision,device,operation,run,ms,new_tokens\n'
                        'm,float32,cpu,search_generate_parse,0,100000,50\n'
                        'm,float32,cpu,decision,0,50000,0\n')
    assert main(['--threads', '1', '--repeats', '1', '--measured', str(measured),
                 '--out', str(tmp_path / 'out')]) == 0
    summary = json.loads((tmp_path / 'out' / 'summary.json').read_text())
    assert summary['target']['decision_budget_s'] == 12.5
    assert set(summary['prefill_floor_s']) == set(summary['best_gflops_per_s'])
    assert (tmp_path / 'out' / 'floor.png').stat().st_size > 1000
