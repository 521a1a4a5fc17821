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

"""`vlm-nav` subcommands report what a user can fix in one line, with --debug for more."""

import subprocess
import sys

import pytest


def _vlm_nav(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'vlm_nav.cli', *args], capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize('args, names', [
    (['evaluate-bag', '/no/such/bag'], '/no/such/bag'),
    (['bringup', 'replay'], '--bag'),
    (['bench', 'nav', '--no-ros', '--episodes', '1', '--policies', 'scored',
      '--model', '/no/such/model', '--out', '{tmp}'], '/no/such/model'),
])
def test_an_error_a_user_can_fix_is_one_line_and_a_failing_exit(args, names, tmp_path):
    result = _vlm_nav(*[a.format(tmp=tmp_path) for a in args])
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith('vlm-nav: error:')]
    assert len(errors) == 1 and names in errors[0], result.stderr


def test_debug_shows_the_traceback():
    result = _vlm_nav('--debug', 'evaluate-bag', '/no/such/bag')
    assert result.returncode != 0
    assert 'Traceback' in result.stderr and '/no/such/bag' in result.stderr
