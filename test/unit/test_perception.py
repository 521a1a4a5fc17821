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

"""The question/label vocabulary and the description grammar."""

import pytest

from vlm_nav.perception.vocabulary import (clean_text, format_description, Observation,
                                           parse_description, SeenObject)


def test_description_round_trips_and_orders_left_to_right():
    objects = [SeenObject('blue box', 'right', 'far'), SeenObject('red ball', 'left', 'near')]
    text = format_description(objects)
    assert text == 'red ball left near. blue box right far.'
    assert parse_description(text) == sorted(objects, key=lambda o: o.bearing != 'left')


def test_parse_drops_what_does_not_fit_the_grammar():
    assert parse_description('nothing.') == []
    assert parse_description('a red ball somewhere. green cone center far.') == [
        SeenObject('green cone', 'center', 'far')]


def test_expected_bearing_is_probability_weighted():
    o = Observation('x', 0.0, 1.0, {'left': 1.0, 'center': 0.0, 'right': 0.0})
    assert o.expected_bearing() > 0.3
    o.bearing_probs = {'left': 0.5, 'center': 0.0, 'right': 0.5}
    assert o.expected_bearing() == pytest.approx(0.0)


@pytest.mark.parametrize('text, why', [('', 'empty'), ('   ', 'empty'), ('a' * 101, 'limit'),
                                       ('red\x1bball', 'control'), ('red\nball', 'control')])
def test_clean_text_refuses(text, why):
    with pytest.raises(ValueError, match=why):
        clean_text(text, 100, 'target', multiline=False)


def test_clean_text_keeps_unicode():
    assert clean_text('  rote Tasse ☕ ', 100, 'target') == 'rote Tasse ☕'
