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
The closed-set questions the package asks a VLM, and the description grammar.

One source of truth: the embedded model is trained on exactly these strings,
the vlm_node asks exactly these strings, and the navigator reads the answers
as probabilities over these labels. No ROS imports here.
"""

from dataclasses import dataclass, field
import json
import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple
import unicodedata

YES_NO: Tuple[str, str] = ('yes', 'no')
BEARINGS: Tuple[str, str, str] = ('left', 'center', 'right')
DISTANCES: Tuple[str, str] = ('near', 'far')

# Bearing of each label's image third, radians, + = left (REP 103). Set from the
# camera's horizontal field of view so the expected bearing is a usable angle.
DEFAULT_HFOV_RAD = math.radians(60.0)

DESCRIBE_PROMPT = 'Describe the scene.'
PATH_QUESTION = 'Is the path ahead clear?'
NOTHING = 'nothing'


# Characters a prompt never needs: controls (C0 and C1), invisible format characters
# (zero-width, bidi overrides, BOM), surrogates, private use, unassigned, and line or
# paragraph separators that act as newlines.
_REFUSED_CATEGORIES = frozenset(('Cc', 'Cf', 'Cs', 'Co', 'Cn', 'Zl', 'Zp'))
# Chat-template and tokenizer markup ('<image>', '</s>', '<|assistant|>',
# '<end_of_utterance>'): user text must not add images or open and close turns.
_MARKUP = re.compile(r'<\|[^<>]*\|>|</?[A-Za-z_][\w.:-]*>')


def clean_text(text: str, limit: int, what: str, multiline: bool = True) -> str:
    """Return the stripped text, or raise ValueError saying why it can't be used in a prompt."""
    stripped = text.strip()
    if not stripped:
        raise ValueError(f'{what} is empty')
    if len(stripped) > limit:
        raise ValueError(f'{what} is {len(stripped)} characters; the limit is {limit}')
    allowed = '\t\n' if multiline else ''
    for c in stripped:
        if c not in allowed and unicodedata.category(c) in _REFUSED_CATEGORIES:
            raise ValueError(f'{what} contains control or invisible characters '
                             f'(U+{ord(c):04X})')
    markup = _MARKUP.search(stripped)
    if markup:
        raise ValueError(f'{what} contains model markup {markup.group(0)!r}')
    return stripped


# A model folder with this file declares a closed vocabulary: {"vocabulary": [labels]}.
VOCABULARY_FILE = 'vocabulary.json'
TARGET_LIMIT = 100                  # characters
_ARTICLES = ('the', 'a', 'an')


def normalise_target(text: str) -> str:
    """
    Return a target as the questions use it: lower case, no leading article, single spaces.

    'The  Red Ball.' -> 'red ball'. Raise ValueError when the text can't be a target.
    """
    words = clean_text(text, TARGET_LIMIT, 'target', multiline=False).lower().split()
    while words and words[0] in _ARTICLES:
        words = words[1:]
    target = ' '.join(words).rstrip('.!?').strip()
    if not target:
        raise ValueError(f'target {text.strip()!r} names no thing')
    return target


def check_target(text: str, known: Optional[Sequence[str]],
                 model: str = 'the model') -> str:
    """
    Return the normalised target if the model knows it; raise ValueError saying why not.

    known: the model's closed vocabulary, None for an open-vocabulary model (any target).
    """
    target = normalise_target(text)
    if known is None or target in known:
        return target
    raise ValueError(f'{model} does not know {target!r}: {model} knows: {", ".join(known)}; '
                     'for other things use a general VLM (model:=...)')


def load_vocabulary(folder: str) -> Optional[List[str]]:
    """
    Return the closed vocabulary a model folder declares, or None (open, or not a folder).

    Raise ValueError when the folder's vocabulary file is not a list of labels.
    """
    path = os.path.join(os.path.expanduser(folder), VOCABULARY_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            labels = json.load(f)['vocabulary']
        if not (isinstance(labels, list) and labels and
                all(isinstance(label, str) and label.strip() for label in labels)):
            raise TypeError('not a list of labels')
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f'{path}: "vocabulary" must be a list of labels ({error})') from None
    return [normalise_target(label) for label in labels]


def visible_question(target: str) -> str:
    return f'Is there a {target}?'


def bearing_question(target: str) -> str:
    return f'Where is the {target}?'


def distance_question(target: str) -> str:
    return f'Is the {target} near or far?'


def target_questions(target: str) -> List[Tuple[str, Tuple[str, ...]]]:
    """All closed-set questions about one target, in a fixed order."""
    return [
        (visible_question(target), YES_NO),
        (bearing_question(target), BEARINGS),
        (distance_question(target), DISTANCES),
        (PATH_QUESTION, YES_NO),
    ]


# The free-text baseline's prompts (the design the package is measured against): it
# generates up to 50 / 150 tokens and searches the text for words like "left".
FREE_TEXT_SEARCH_TOKENS = 50
FREE_TEXT_EXPLORE_TOKENS = 150
FREE_TEXT_EXPLORE_PROMPT = ('Describe the scene for robot navigation:\n'
                            '1. What obstacles are visible?\n'
                            '2. Is the path ahead clear?\n'
                            '3. Any interesting objects or landmarks?\n'
                            '4. Suggested direction (straight/left/right)?')


def free_text_search_question(target: str) -> str:
    return (f'Is there a {target} in this image? If yes, describe its location '
            '(left, right, center, far, near).')


def free_text_search_answer(target: str, bearing: str = '', distance: str = '') -> str:
    """Return the free-text answer the embedded model is taught for the baseline's question."""
    if not bearing:
        return 'no.'
    return f'yes, the {target} is {bearing} and {distance}.'


def free_text_explore_answer(path_clear: bool, description: str) -> str:
    return ('the path ahead is clear. ' if path_clear else
            'obstacle ahead, the path is blocked. ') + description


@dataclass(frozen=True)
class SeenObject:
    label: str
    bearing: str
    distance: str


def format_description(objects: Sequence[SeenObject]) -> str:
    """'red ball left near. blue box center far.' ordered left to right; 'nothing.' if empty."""
    if not objects:
        return NOTHING + '.'
    order = {b: i for i, b in enumerate(BEARINGS)}
    ordered = sorted(objects, key=lambda o: (order.get(o.bearing, 9), o.label))
    return ' '.join(f'{o.label} {o.bearing} {o.distance}.' for o in ordered)


_ITEM = re.compile(r'^\s*(?P<label>.+?)\s+(?P<bearing>left|center|right)'
                   r'\s+(?P<distance>near|far)\s*$')


def parse_description(text: str) -> List[SeenObject]:
    """Read the description grammar back; items that don't fit it are dropped."""
    objects = []
    for item in text.split('.'):
        match = _ITEM.match(item.strip().lower())
        if match:
            objects.append(SeenObject(match['label'], match['bearing'], match['distance']))
    return objects


def parse_grammar(text: str) -> Optional[List[SeenObject]]:
    """
    Return the objects of a description that follows the grammar throughout.

    'nothing.' is none; None when any item does not follow it (free text).
    """
    items = [item.strip() for item in text.strip().lower().split('.') if item.strip()]
    if items == [NOTHING]:
        return []
    objects = parse_description(text)
    return objects if items and len(objects) == len(items) else None


@dataclass
class Observation:
    """Probabilities the model gave for one target on one frame."""

    target: str
    stamp_s: float                      # stamp of the frame the model saw
    visible_prob: float
    bearing_probs: Dict[str, float] = field(default_factory=dict)
    distance_probs: Dict[str, float] = field(default_factory=dict)
    path_clear_prob: float = 1.0

    def expected_bearing(self, hfov_rad: float = DEFAULT_HFOV_RAD) -> float:
        """Probability-weighted bearing in radians (+ = left), centre of each third."""
        third = hfov_rad / 3.0
        angle = {'left': third, 'center': 0.0, 'right': -third}
        total = sum(self.bearing_probs.values()) or 1.0
        return sum(angle[k] * p for k, p in self.bearing_probs.items() if k in angle) / total

    def near_prob(self) -> float:
        return float(self.distance_probs.get('near', 0.0))
