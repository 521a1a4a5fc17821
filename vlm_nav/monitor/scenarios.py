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
Security monitor scenarios: the scenario file, checked entry by entry. No ROS here.

A scenario is a closed-set question about one frame (yes/no by default) and the answer(s)
that mean "alarm"; `vlm_nav.monitor.alerts` turns the model's answers into alerts.
"""

from dataclasses import dataclass
import re
from typing import List, Sequence, Tuple

from vlm_nav.perception.vocabulary import clean_text, YES_NO
import yaml

SEVERITIES = ('info', 'warning', 'critical')
MAX_QUESTION_CHARS = 500     # vlm_node refuses longer questions
MAX_CHOICES = 32             # vlm_node refuses more choices
_ID = re.compile(r'^[a-z0-9_]{1,64}$')
_FIELDS = {'id', 'question', 'choices', 'alarm', 'threshold', 'clear_threshold',
           'cooldown_s', 'min_consecutive', 'clear_consecutive', 'description',
           'severity', 'enabled'}


class ScenarioError(ValueError):
    """The scenario file can't be used; the message names the file and the bad entry."""


@dataclass(frozen=True)
class Scenario:
    id: str     # noqa: A003 - the scenario file's key; a dataclass field shadows no builtin
    question: str
    choices: Tuple[str, ...] = YES_NO
    alarm: Tuple[str, ...] = ('yes',)
    threshold: float = 0.7
    clear_threshold: float = 0.7
    cooldown_s: float = 60.0
    min_consecutive: int = 1
    clear_consecutive: int = 1
    description: str = ''
    severity: str = 'warning'
    enabled: bool = True

    def confidence(self, scores: Sequence[float]) -> float:
        """P(alarm): the summed probabilities of the alarm choices."""
        if len(scores) != len(self.choices):
            raise ValueError(f'{len(scores)} scores for {len(self.choices)} choices')
        return float(sum(p for c, p in zip(self.choices, scores) if c in self.alarm))


def _number(entry: dict, key: str, default, low: float, high: float, where: str,
            integer: bool = False):
    value = entry.get(key, default)
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ScenarioError(f'{where}: {key} must be {"an integer" if integer else "a number"}'
                            f', got {value!r}')
    if not low <= value <= high:
        raise ScenarioError(f'{where}: {key} must be in [{low}, {high}], got {value!r}')
    return int(value) if integer else float(value)


def _string_list(value, key: str, where: str) -> Tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if isinstance(value, bool) or (isinstance(value, list)
                                   and any(isinstance(v, bool) for v in value)):
        raise ScenarioError(f'{where}: {key} has true/false where answers belong: YAML reads '
                            f"bare yes/no as booleans; quote them ('yes', 'no')")
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScenarioError(f'{where}: {key} must be a list of strings, got {value!r}')
    try:
        return tuple(clean_text(v, 100, f'{key} item', multiline=False) for v in value)
    except ValueError as error:
        raise ScenarioError(f'{where}: {error}') from None


def parse_scenario(entry, where: str) -> Scenario:
    """One scenario from its YAML mapping; ScenarioError says what is wrong with it."""
    if not isinstance(entry, dict):
        raise ScenarioError(f'{where}: must be a mapping with id and question, got {entry!r}')
    scenario_id = entry.get('id')
    if not isinstance(scenario_id, str) or not _ID.match(scenario_id):
        raise ScenarioError(f'{where}: id must be 1-64 characters of a-z, 0-9 and _, '
                            f'got {scenario_id!r}')
    where = f'{where} (id {scenario_id!r})'
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise ScenarioError(f'{where}: unknown key(s) {unknown}; known: {sorted(_FIELDS)}')
    question = entry.get('question')
    if not isinstance(question, str):
        raise ScenarioError(f'{where}: question must be a string, got {question!r}')
    try:
        question = clean_text(question, MAX_QUESTION_CHARS, 'question')
    except ValueError as error:
        raise ScenarioError(f'{where}: {error}') from None
    if 'choices' in entry:
        choices = _string_list(entry['choices'], 'choices', where)
        if 'alarm' not in entry:
            raise ScenarioError(f'{where}: with choices, say which mean alarm (alarm: [...])')
    else:
        choices = YES_NO
    if not 2 <= len(choices) <= MAX_CHOICES or len(set(choices)) != len(choices):
        raise ScenarioError(f'{where}: choices must be 2-{MAX_CHOICES} distinct answers, '
                            f'got {list(choices)}')
    alarm = _string_list(entry.get('alarm', 'yes'), 'alarm', where)
    if not alarm or not set(alarm) <= set(choices) or set(alarm) == set(choices):
        raise ScenarioError(f'{where}: alarm must be some (not all) of the choices '
                            f'{list(choices)}, got {list(alarm)}')
    threshold = _number(entry, 'threshold', 0.7, 0.01, 1.0, where)
    clear_threshold = _number(entry, 'clear_threshold', threshold, 0.0, threshold, where)
    severity = entry.get('severity', 'warning')
    if severity not in SEVERITIES:
        raise ScenarioError(f'{where}: severity must be one of {list(SEVERITIES)}, '
                            f'got {severity!r}')
    description = entry.get('description', '')
    if not isinstance(description, str):
        raise ScenarioError(f'{where}: description must be a string, got {description!r}')
    enabled = entry.get('enabled', True)
    if not isinstance(enabled, bool):
        raise ScenarioError(f'{where}: enabled must be true or false, got {enabled!r}')
    return Scenario(
        id=scenario_id, question=question, choices=choices, alarm=alarm,
        threshold=threshold, clear_threshold=clear_threshold,
        cooldown_s=_number(entry, 'cooldown_s', 60.0, 0.0, 1e7, where),
        min_consecutive=_number(entry, 'min_consecutive', 1, 1, 1000, where, integer=True),
        clear_consecutive=_number(entry, 'clear_consecutive', 1, 1, 1000, where,
                                  integer=True),
        description=description.strip() or question, severity=severity, enabled=enabled)


def parse_scenarios(document, source: str = 'scenario file') -> List[Scenario]:
    """Every scenario of a loaded YAML document (`scenarios: [...]`), validated."""
    if not isinstance(document, dict) or not isinstance(document.get('scenarios'), list):
        raise ScenarioError(f'{source}: expected a mapping with a list under "scenarios:"')
    if not document['scenarios']:
        raise ScenarioError(f'{source}: the scenarios list is empty')
    scenarios, seen = [], set()
    for index, entry in enumerate(document['scenarios']):
        scenario = parse_scenario(entry, f'{source}: scenario #{index + 1}')
        if scenario.id in seen:
            raise ScenarioError(f'{source}: scenario #{index + 1}: duplicate id '
                                f'{scenario.id!r}')
        seen.add(scenario.id)
        scenarios.append(scenario)
    return scenarios


def load_scenarios(path: str) -> List[Scenario]:
    """Read and validate a scenario file; ScenarioError names the file and the entry."""
    try:
        with open(path, encoding='utf-8') as f:
            document = yaml.safe_load(f)
    except OSError as error:
        raise ScenarioError(f'scenario file {path!r}: {error.strerror or error}') from None
    except yaml.YAMLError as error:
        raise ScenarioError(f'scenario file {path!r}: not valid YAML: {error}') from None
    return parse_scenarios(document, f'scenario file {path!r}')


def select(scenarios: Sequence[Scenario], ids: Sequence[str]) -> List[Scenario]:
    """Return the scenarios named in ids (enabled or not), or every enabled one if ids is empty."""
    if not ids:
        chosen = [s for s in scenarios if s.enabled]
        if not chosen:
            raise ScenarioError('no scenario is enabled; enable one in the file or name '
                                'some in the scenarios parameter')
        return chosen
    by_id = {s.id: s for s in scenarios}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        raise ScenarioError(f'unknown scenario id(s) {unknown}; the file has {sorted(by_id)}')
    return [by_id[i] for i in dict.fromkeys(ids)]
