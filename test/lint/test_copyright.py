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
Every Python file opens with the Apache-2.0 header that ament_copyright checks.

ament_copyright has no wheel, so on the pip path this test checks the same two things
it does for an apache2 header: a copyright line, then the license's notice.
"""

from pathlib import Path
import re
import subprocess

import pytest

REPO = Path(__file__).resolve().parents[2]
HEADER = re.compile(r'\A(#![^\n]*\n)?# Copyright \d{4}(-\d{4})? [^\n]+\n#\n'
                    r'# Licensed under the Apache License, Version 2\.0 \(the "License"\);\n')


def _python_files():
    listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard',
                             '*.py'], cwd=REPO, capture_output=True, text=True, check=True)
    return [p for p in listed.stdout.split() if not p.startswith('bench/results/')]


@pytest.mark.copyright
@pytest.mark.linter
def test_every_python_file_carries_the_license_header():
    files = _python_files()
    assert len(files) > 50, files
    missing = [p for p in files if not HEADER.match((REPO / p).read_text(encoding='utf-8'))]
    assert not missing, 'no Apache-2.0 header in:\n' + '\n'.join(missing)
