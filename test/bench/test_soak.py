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
A 90-second version of the soak benchmark (vlm_nav/bench/soak.py).

The simulator stack runs, memory is sampled, and every call must be answered with no RSS
growth beyond the bound.

The recorded 30-minute run uses the same module: `python -m vlm_nav.bench.soak --minutes 30 --out
bench/results/soak_30min`.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

from vlm_nav.bench.soak import (MAX_SLOPE_MB_PER_MIN, slope_mb_per_min,
                                sustained_slope_mb_per_min)


def test_a_step_is_not_a_leak_but_steady_growth_is():
    # Samples every 2 s for 90 s, 20 s of warm-up (the short soak below). In a full-suite
    # run vlm_node stepped 7.6 MB once at 48 s, flat before and after: 9.6 MB/min overall.
    times = np.arange(0.0, 90.0, 2.0)
    step = [(t, 446.0 + (7.6 if t >= 48.0 else 0.0)) for t in times]
    leak = [(t, 446.0 + 6.0 * t / 60.0) for t in times]       # 6 MB/min throughout
    assert sustained_slope_mb_per_min(step, 20.0) < 1.0
    assert sustained_slope_mb_per_min(leak, 20.0) == pytest.approx(6.0)
    # ... which the overall slope could not tell apart:
    assert slope_mb_per_min(step, 20.0) > MAX_SLOPE_MB_PER_MIN
    assert sustained_slope_mb_per_min(leak[:12], 20.0) is None        # too few samples


@pytest.mark.ros
@pytest.mark.slow
def test_short_soak_answers_every_call_without_growing(ros_domain, tiny_llava_dir, tmp_path):
    out = tmp_path / 'soak'
    result = subprocess.run(
        # 70 s measured after warm-up: one allocation step of a few MB (a new target's
        # prompt shapes; flat before and after) reads as > 5 MB/min over a 30 s window.
        [sys.executable, '-m', 'vlm_nav.bench.soak', '--minutes', '1.5',
         '--out', str(out), '--model', tiny_llava_dir, '--sample-s', '2', '--warmup-s', '20',
         '--switch-s', '15'],
        capture_output=True, text=True, timeout=300)
    print(result.stdout[-3000:])
    summary = json.loads((out / 'summary.json').read_text())
    assert result.returncode == 0, summary['problems']
    assert summary['ok'] and not summary['dead']
    calls = summary['calls']
    assert calls['unanswered'] == 0 and calls['answered'] >= 30, calls
    twists = summary['twists']
    assert twists['bad'] == 0 and twists['count'] > 100 and twists['moving'] > 0, twists
    for node, slope in summary['rss_sustained_slope_mb_per_min'].items():
        assert slope is not None and slope < MAX_SLOPE_MB_PER_MIN, (node, slope)
    assert set(summary['rss_mb']) == {'sim_node', 'vlm_node', 'scene_describer_node',
                                      'navigator_node'}
    diagnostics = summary['final_diagnostics']
    assert int(diagnostics['vlm_node']['requests_ok']) > 0
    assert int(diagnostics['navigator_node']['observations']) > 0
    for name in ('samples.csv', 'diagnostics.csv', 'calls.csv', 'rss.png'):
        assert (out / name).stat().st_size > 0, name
