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
The README's main command: the demo finds the target and stops in front of it.

The whole stack over DDS on the simulator with the embedded model, judged on simulator
ground truth.
"""

import os
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.ros, pytest.mark.slow]


def test_demo_finds_the_red_ball(tmp_path, ros_domain):
    out = tmp_path / 'demo'
    result = subprocess.run(
        [sys.executable, '-m', 'vlm_nav.cli.main', 'demo', '--quiet-nodes', '--out', str(out),
         '--timeout-s', '180'],
        capture_output=True, text=True, timeout=400, env=dict(os.environ))
    tail = result.stdout[-4000:] + result.stderr[-2000:]
    assert result.returncode == 0, tail
    assert 'outcome: SUCCESS' in result.stdout, tail
    assert 'search/arrived' in result.stdout
    assert (out / 'trajectory.png').stat().st_size > 10_000
