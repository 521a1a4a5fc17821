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

"""Descriptions from several views of a frame: the views, the vote, free-text answers."""

import numpy as np
import pytest

from vlm_nav.perception import multiview

from vlm_nav.perception import vocabulary
from vlm_nav.perception.vocabulary import SeenObject


def _frame(width=96, height=96):
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:, :, 0] = np.arange(width, dtype=np.uint8)[None, :]     # red = column index
    rgb[:, :, 1] = np.arange(height, dtype=np.uint8)[:, None]    # green = row index
    return rgb


def test_views_mirror_and_shift_along_the_width():
    rgb = _frame()
    assert np.array_equal(multiview.view_image(rgb, 'identity'), rgb)
    mirror = multiview.view_image(rgb, 'mirror')
    assert mirror[0, 0, 0] == 95 and mirror[0, 95, 0] == 0
    assert np.array_equal(mirror[:, :, 1], rgb[:, :, 1])
    shift = multiview.view_image(rgb, 'shift')       # 2 px at 96: content moves left
    assert shift.shape == rgb.shape
    assert list(shift[0, :3, 0]) == [2, 3, 4] and list(shift[0, -3:, 0]) == [95, 95, 95]
    both = multiview.view_image(rgb, 'mirror_shift')
    assert list(both[0, :2, 0]) == [93, 92] and both[0, -1, 0] == 0
    # A camera's resolution shifts by the same fraction; a batch shifts image by image.
    assert multiview.view_image(_frame(480, 320), 'shift')[0, 0, 0] == 10
    batch = np.stack([rgb, rgb[::-1]])
    assert np.array_equal(multiview.view_image(batch, 'mirror_shift')[1],
                          multiview.view_image(rgb[::-1], 'mirror_shift'))


def test_merge_keeps_what_enough_views_name_in_frame_bearings():
    views = multiview.VIEWS
    ball = SeenObject('red ball', 'left', 'near')
    per_view = [
        [ball, SeenObject('blue box', 'center', 'far')],          # identity
        multiview.to_frame([SeenObject('red ball', 'right', 'near'),   # mirror: seen right
                            SeenObject('door', 'left', 'far')], 'mirror'),
        [SeenObject('red ball', 'center', 'far'), SeenObject('blue box', 'center', 'far')],
        [],
    ]
    merged = {o.label: o for o in multiview.merge(per_view, views, 2)}
    # The ball: 3 votes; its bearing and distance from the two aligned views, not the
    # shifted one. The box: 2 votes (identity, shift). The door: 1 vote, dropped.
    assert merged == {'red ball': ball, 'blue box': SeenObject('blue box', 'center', 'far')}
    assert {o.label for o in multiview.merge(per_view, views, 1)} == {
        'red ball', 'blue box', 'door'}
    assert {o.label for o in multiview.merge(per_view, views, 3)} == {'red ball'}


def test_describe_asks_each_view_and_combines():
    asked = []
    answers = iter(['red ball left near.', 'red ball right near. door right far.',
                    'red ball left far.', 'no idea'])

    def generate(images):
        asked.append(images)
        return [next(answers) for _ in images]

    rgb = _frame()
    text, objects = multiview.describe(generate, rgb)
    assert [len(batch) for batch in asked] == [1, 3]     # the frame, then the rest at once
    assert np.array_equal(asked[1][0], rgb[:, ::-1])
    assert text == 'red ball left near.'
    assert objects == [SeenObject('red ball', 'left', 'near')]


def test_describe_all_views_nothing():
    text, objects = multiview.describe(lambda images: ['nothing.'] * len(images), _frame())
    assert (text, objects) == ('nothing.', [])


def test_a_free_text_answer_is_described_once_and_kept():
    asked = []

    def generate(images):
        asked.append(images)
        return ['A red ball on the left, near the wall.'] * len(images)

    text, objects = multiview.describe(generate, _frame())
    assert [len(batch) for batch in asked] == [1]
    assert text == 'A red ball on the left, near the wall.' and objects == []


def test_parse_grammar_tells_the_grammar_from_free_text():
    assert vocabulary.parse_grammar('nothing.') == []
    assert vocabulary.parse_grammar('red ball left near. door center far.') == [
        SeenObject('red ball', 'left', 'near'), SeenObject('door', 'center', 'far')]
    assert vocabulary.parse_grammar('red ball left near. and a cat.') is None
    assert vocabulary.parse_grammar('') is None


@pytest.mark.parametrize('views, votes, problem', [
    ([], 1, 'at least one'),
    (['identity', 'zoom'], 1, 'unknown'),
    (['mirror', 'identity'], 1, 'first view'),
    (['identity', 'identity'], 1, 'repeat'),
    (['identity', 'mirror'], 3, 'min_votes'),
    (['identity'], 0, 'min_votes'),
])
def test_bad_view_lists_are_refused(views, votes, problem):
    assert problem in multiview.check_views(views, votes)
    assert multiview.check_views(list(multiview.VIEWS), multiview.DEFAULT_MIN_VOTES) is None
