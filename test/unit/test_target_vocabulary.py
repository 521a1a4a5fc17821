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

"""Targets: normalised, and checked against the model's declared vocabulary."""

import json

import pytest

from vlm_nav.models.embedded import EMBEDDED_MODEL_DIR, model_vocabulary
from vlm_nav.perception.vocabulary import (check_target, load_vocabulary, normalise_target,
                                           VOCABULARY_FILE)
from vlm_nav.sim.layout import OBJECT_LABELS

EMBEDDED = model_vocabulary(str(EMBEDDED_MODEL_DIR))


def test_the_embedded_model_declares_the_simulators_18_things():
    name, known = EMBEDDED
    assert name == 'the embedded model'
    assert known == OBJECT_LABELS and len(known) == 18


@pytest.mark.parametrize('text, target', [
    ('red ball', 'red ball'), ('The Red Ball', 'red ball'), ('  a   blue  chair ', 'blue chair'),
    ('an yellow cone.', 'yellow cone'), ('THE DOOR', 'door'), ('the the plant', 'plant'),
    ('Green Box?', 'green box')])
def test_known_targets_are_accepted_normalised(text, target):
    assert check_target(text, EMBEDDED[1], EMBEDDED[0]) == target


@pytest.mark.parametrize('text', ['crimson ball', 'purple ball', 'rote Kugel', 'something red',
                                  '红球', 'red balls', 'ball'])
def test_unknown_targets_are_refused_with_the_list(text):
    with pytest.raises(ValueError) as error:
        check_target(text, EMBEDDED[1], EMBEDDED[0])
    message = str(error.value)
    assert message.startswith(f'the embedded model does not know {normalise_target(text)!r}')
    assert 'the embedded model knows: red ball, red box, ' in message
    assert message.endswith('door, plant; for other things use a general VLM (model:=...)')


@pytest.mark.parametrize('text, why', [('', 'empty'), ('the', 'names no thing'),
                                       ('<image> red ball', 'markup'), ('red\nball', 'control'),
                                       ('x' * 101, 'limit')])
def test_unusable_text_is_refused_whatever_the_model(text, why):
    for known in (EMBEDDED[1], None):
        with pytest.raises(ValueError, match=why):
            check_target(text, known)


def test_open_vocabulary_models_take_any_target(tmp_path):
    name, known = model_vocabulary(str(tmp_path))
    assert known is None and name == f'model {tmp_path.name!r}'
    assert model_vocabulary('HuggingFaceTB/SmolVLM-256M-Instruct')[1] is None
    assert check_target('The Crimson Ball', known, name) == 'crimson ball'
    assert check_target('红球', known, name) == '红球'


def test_a_model_folder_declares_its_vocabulary(tmp_path):
    (tmp_path / VOCABULARY_FILE).write_text(json.dumps({'vocabulary': ['Mug', 'the kettle']}))
    assert load_vocabulary(str(tmp_path)) == ['mug', 'kettle']
    (tmp_path / VOCABULARY_FILE).write_text(json.dumps({'vocabulary': 'mug'}))
    with pytest.raises(ValueError, match='must be a list of labels'):
        load_vocabulary(str(tmp_path))
