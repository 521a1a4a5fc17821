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

"""The monitor's pure policy: scenario files and debounce / event / cooldown decisions."""

from pathlib import Path

import pytest

from vlm_nav.monitor.alerts import AlertPolicy
from vlm_nav.monitor.scenarios import (load_scenarios, parse_scenarios, Scenario, ScenarioError,
                                       select)
from vlm_nav.perception.vocabulary import PATH_QUESTION, visible_question
import yaml

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / 'config' / 'monitor_scenarios.yaml'


def run(policy, scenario_id, confidences, start=0.0, step=1.0):
    """Feed one confidence per check, step seconds apart; the decisions."""
    return [policy.update(scenario_id, c, start + i * step) for i, c in enumerate(confidences)]


def alerts_at(decisions):
    return [i for i, d in enumerate(decisions) if d.alert]


# ---- decisions ---------------------------------------------------------------------------
def test_one_event_makes_one_alert():
    policy = AlertPolicy([Scenario('door', 'Is there a door?', cooldown_s=0.0)])
    decisions = run(policy, 'door', [0.1, 0.9, 0.95, 0.99, 0.8, 0.9, 0.75])
    assert alerts_at(decisions) == [1]
    assert [d.hit for d in decisions] == [False] + [True] * 6
    assert policy.in_event('door')


def test_debounce_needs_consecutive_hits():
    policy = AlertPolicy([Scenario('fire', 'q', min_consecutive=3, cooldown_s=0.0)])
    decisions = run(policy, 'fire', [0.9, 0.9, 0.2, 0.9, 0.9, 0.9, 0.9])
    assert alerts_at(decisions) == [5]       # the first run of two never reaches three
    assert decisions[5].consecutive_hits == 3


def test_event_ends_and_rearms():
    policy = AlertPolicy([Scenario('door', 'q', cooldown_s=0.0, clear_consecutive=2)])
    decisions = run(policy, 'door', [0.9, 0.1, 0.9, 0.1, 0.1, 0.9])
    # one low check doesn't end the event (clear_consecutive 2); two do, then it re-arms
    assert alerts_at(decisions) == [0, 5]
    assert [i for i, d in enumerate(decisions) if d.event_ended] == [4]


def test_hysteresis_between_thresholds_keeps_the_event():
    policy = AlertPolicy([Scenario('door', 'q', threshold=0.7, clear_threshold=0.3,
                                   cooldown_s=0.0)])
    decisions = run(policy, 'door', [0.8, 0.5, 0.6, 0.8, 0.2, 0.8])
    assert alerts_at(decisions) == [0, 5]    # 0.5 and 0.6 neither alert nor end it
    assert [i for i, d in enumerate(decisions) if d.event_ended] == [4]


def test_cooldown_holds_a_new_event_until_it_has_passed():
    policy = AlertPolicy([Scenario('door', 'q', cooldown_s=10.0)])
    # alert at t=0; ends at t=1; new event from t=2 held back until t=10, still going on
    decisions = run(policy, 'door', [0.9, 0.1] + [0.9] * 10)
    assert alerts_at(decisions) == [0, 10]
    assert all(d.held_by_cooldown for d in decisions[2:10])
    assert not decisions[10].held_by_cooldown


def test_a_flapping_condition_alerts_at_most_once_per_cooldown():
    policy = AlertPolicy([Scenario('door', 'q', cooldown_s=5.0)])
    decisions = run(policy, 'door', [0.9, 0.1] * 20)     # 40 s, an event every 2 s
    times = alerts_at(decisions)
    assert times == [0, 6, 12, 18, 24, 30, 36]
    assert all(b - a >= 5 for a, b in zip(times, times[1:]))


def test_an_event_held_back_that_ends_in_the_cooldown_is_not_reported_later():
    policy = AlertPolicy([Scenario('door', 'q', cooldown_s=10.0)])
    decisions = run(policy, 'door', [0.9, 0.1, 0.9, 0.9, 0.1] + [0.1] * 10)
    assert alerts_at(decisions) == [0]


def test_scenarios_are_independent():
    policy = AlertPolicy([Scenario('a', 'q', cooldown_s=100.0), Scenario('b', 'q')])
    assert policy.update('a', 0.9, 0.0).alert
    assert policy.update('b', 0.9, 0.5).alert
    assert not policy.update('a', 0.95, 1.0).alert
    assert policy.in_event('a') and policy.in_event('b')


def test_time_going_backwards_forgets_the_history():
    policy = AlertPolicy([Scenario('door', 'q', cooldown_s=60.0)])
    assert policy.update('door', 0.9, 100.0).alert
    assert not policy.update('door', 0.9, 101.0).alert
    assert policy.update('door', 0.9, 5.0).alert       # bag looped: a new recording


def test_confidence_sums_the_alarm_choices():
    scenario = Scenario('door', 'Is the door open, closed or ajar?',
                        choices=('open', 'closed', 'ajar'), alarm=('open', 'ajar'))
    assert scenario.confidence([0.2, 0.5, 0.3]) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        scenario.confidence([0.5, 0.5])


# ---- scenario files ----------------------------------------------------------------------
def test_shipped_file_loads_with_the_security_and_simulator_scenarios():
    scenarios = {s.id: s for s in load_scenarios(str(SHIPPED))}
    for security in ('person_lying_on_floor', 'smoke_or_fire', 'unknown_person', 'door_open',
                     'unattended_bag'):
        assert security in scenarios
    # the simulator scenarios use the embedded model's trained phrasing, word for word
    assert scenarios['door_in_view'].question == visible_question('door')
    assert scenarios['red_ball_in_view'].question == visible_question('red ball')
    assert scenarios['path_blocked'].question == PATH_QUESTION
    assert scenarios['path_blocked'].alarm == ('no',)
    enabled = [s.id for s in select(list(scenarios.values()), [])]
    assert enabled == ['door_in_view', 'red_ball_in_view', 'path_blocked']


def _write(tmp_path, document) -> str:
    path = tmp_path / 'scenarios.yaml'
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document))
    return str(path)


@pytest.mark.parametrize('entry, message', [
    ({'question': 'Is there a door?'}, 'scenario #2: id must be'),
    ({'id': 'Bad Id', 'question': 'q?'}, 'id must be 1-64 characters'),
    ({'id': 'x'}, "(id 'x'): question must be a string"),
    ({'id': 'x', 'question': '  '}, 'question is empty'),
    ({'id': 'x', 'question': 'Is there a <image>?'}, 'model markup'),
    ({'id': 'x', 'question': 'q?', 'treshold': 0.5}, "unknown key(s) ['treshold']"),
    ({'id': 'x', 'question': 'q?', 'threshold': 1.5}, 'threshold must be in [0.01, 1.0]'),
    ({'id': 'x', 'question': 'q?', 'threshold': 'high'}, 'threshold must be a number'),
    ({'id': 'x', 'question': 'q?', 'threshold': 0.5, 'clear_threshold': 0.6},
     'clear_threshold must be in [0.0, 0.5]'),
    ({'id': 'x', 'question': 'q?', 'cooldown_s': -1}, 'cooldown_s must be in'),
    ({'id': 'x', 'question': 'q?', 'min_consecutive': 1.5}, 'min_consecutive must be an int'),
    ({'id': 'x', 'question': 'q?', 'choices': ['a', 'b']}, 'say which mean alarm'),
    ({'id': 'x', 'question': 'q?', 'choices': ['a'], 'alarm': 'a'}, 'choices must be 2-32'),
    ({'id': 'x', 'question': 'q?', 'choices': ['a', 'a'], 'alarm': 'a'}, 'distinct'),
    ({'id': 'x', 'question': 'q?', 'choices': ['a', 'b'], 'alarm': 'c'}, 'alarm must be some'),
    ({'id': 'x', 'question': 'q?', 'alarm': ['yes', 'no']}, 'alarm must be some (not all)'),
    ({'id': 'x', 'question': 'q?', 'severity': 'panic'}, 'severity must be one of'),
    ({'id': 'x', 'question': 'q?', 'enabled': 'yes please'}, 'enabled must be true or false'),
    ({'id': 'x', 'question': 'q?', 'alarm': False}, 'quote them'),
    ({'id': 'x', 'question': 'q?', 'choices': [True, False], 'alarm': 'yes'}, 'quote them'),
    ({'id': 'door', 'question': 'q?'}, "scenario #2: duplicate id 'door'"),
    ('just a string', 'scenario #2: must be a mapping'),
])
def test_bad_entries_are_refused_naming_the_entry(tmp_path, entry, message):
    path = _write(tmp_path, {'scenarios': [{'id': 'door', 'question': 'Is there a door?'},
                                           entry]})
    with pytest.raises(ScenarioError) as error:
        load_scenarios(path)
    assert message in str(error.value)
    assert path in str(error.value)


@pytest.mark.parametrize('document, message', [
    ('scenarios: [', 'not valid YAML'),
    ('- id: x\n', 'a list under "scenarios:"'),
    ('scenarios: []\n', 'the scenarios list is empty'),
])
def test_bad_files_are_refused(tmp_path, document, message):
    with pytest.raises(ScenarioError, match='scenario file .*' + message.replace('[', r'\[')
                       .replace('(', r'\(').replace(')', r'\)')):
        load_scenarios(_write(tmp_path, document))


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ScenarioError, match='No such file'):
        load_scenarios(str(tmp_path / 'absent.yaml'))


def test_select_by_id_or_enabled():
    scenarios = parse_scenarios({'scenarios': [
        {'id': 'a', 'question': 'q?'}, {'id': 'b', 'question': 'q?', 'enabled': False}]})
    assert [s.id for s in select(scenarios, [])] == ['a']
    assert [s.id for s in select(scenarios, ['b', 'a', 'b'])] == ['b', 'a']
    with pytest.raises(ScenarioError, match=r"unknown scenario id\(s\) \['c'\]"):
        select(scenarios, ['c'])
    with pytest.raises(ScenarioError, match='no scenario is enabled'):
        select(scenarios[1:], [])
