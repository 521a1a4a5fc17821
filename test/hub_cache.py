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

"""A saved model folder laid out as a Hugging Face hub cache, for loading by hub id offline."""

from pathlib import Path
import shutil


def into_hub_cache(folder: str, cache: Path, repo: str) -> None:
    """Lay a saved folder out as the Hugging Face cache stores a downloaded repo."""
    commit = '0' * 40
    root = cache / ('models--' + repo.replace('/', '--'))
    shutil.copytree(folder, root / 'snapshots' / commit)
    (root / 'refs').mkdir(parents=True)
    (root / 'refs' / 'main').write_text(commit)
