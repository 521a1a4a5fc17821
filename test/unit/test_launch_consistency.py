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
One source of truth: launch files (robot path) and `vlm-nav bringup` (pip path) agree.

Both start the same nodes with the same arguments, parameter files and parameters the
package really has.

`launch`/`launch_ros` can't be installed without a ROS distro, so the launch files are read
as Python syntax trees: every Node(...) and DeclareLaunchArgument(...) in them.
"""

import ast
from dataclasses import asdict
import importlib.util
from pathlib import Path
import re

import pytest

from vlm_nav.bringup.profiles import node_parameters, PROFILE_ARGUMENTS, profile_nodes
from vlm_nav.bringup.supervisor import node_module
from vlm_nav.nav.policy import (config_from_parameters, POLICY_PARAMETERS, POLICY_PARAMS,
                                PolicyConfig)
import yaml

REPO = Path(__file__).resolve().parents[2]
LAUNCH = REPO / 'launch'


def _const(node):
    return node.value if isinstance(node, ast.Constant) else None


def read_launch(path: Path):
    """Return the (nodes, arguments, config files) named in a launch file."""
    tree = ast.parse(path.read_text())
    nodes, arguments, files = [], [], []
    for call in ast.walk(tree):
        if not isinstance(call, ast.Call):
            continue
        name = getattr(call.func, 'id', getattr(call.func, 'attr', ''))
        kwargs = {k.arg: k.value for k in call.keywords}
        if name == 'Node':
            overrides = set()
            for item in getattr(kwargs.get('parameters'), 'elts', []):
                if isinstance(item, ast.Dict):
                    overrides |= {_const(k) for k in item.keys}
            nodes.append((_const(kwargs['package']), _const(kwargs['executable']),
                          _const(kwargs['name']), overrides))
        elif name == 'DeclareLaunchArgument':
            arguments.append(_const(call.args[0]))
        elif name == 'join':
            files += [_const(a) for a in call.args if str(_const(a)).endswith('.yaml')]
    return nodes, arguments, files


def console_scripts():
    text = (REPO / 'setup.py').read_text()
    return set(re.findall(r"'([\w-]+) = vlm_nav\.[\w.]+:main'", text))


def declared_parameters(executable: str):
    source = (REPO / 'vlm_nav' / f'{executable}.py').read_text()
    names = set(re.findall(r"declare(?:_parameter)?\(\s*(?:self,\s*)?'(\w+)'", source))
    if executable == 'navigator_node':   # policy parameters are declared in a loop
        names |= set(POLICY_PARAMS)
    return names


@pytest.mark.parametrize('profile', sorted(PROFILE_ARGUMENTS))
def test_launch_file_and_bringup_agree(profile):
    path = LAUNCH / f'{profile}.launch.py'
    assert path.is_file(), f'no launch file for bringup profile {profile}'
    nodes, arguments, files = read_launch(path)
    # the recorder (record:=...) and monitor (monitor:=true) nodes are conditional
    specs = profile_nodes(profile, record='bag', monitor=True)
    assert [(n[1], n[2]) for n in nodes] == [(s.executable, s.name) for s in specs]
    assert sorted(arguments) == sorted(PROFILE_ARGUMENTS[profile])
    for (package, executable, _name, overrides), spec in zip(nodes, specs):
        assert package == 'vlm_nav'
        assert executable in console_scripts(), f'{executable} is not an executable'
        assert overrides == set(spec.parameters), (executable, overrides, spec.parameters)
        unknown = overrides - declared_parameters(executable)
        assert not unknown, f'{path.name}: {executable} has no parameter(s) {unknown}'
    for name in files:
        assert (REPO / 'config' / name).is_file(), f'{path.name} names missing config {name}'


def test_every_launch_file_is_a_bringup_profile():
    profiles = {p.name[:-len('.launch.py')] for p in LAUNCH.glob('*.launch.py')}
    assert profiles == set(PROFILE_ARGUMENTS)


def _call_name(call: ast.Call) -> str:
    return getattr(call.func, 'id', getattr(call.func, 'attr', ''))


def test_replay_launch_ends_when_the_player_exits():
    """
    Check that replay.launch.py shuts the launch down when bag_player_node exits.

    An OnProcessExit handler on the player's Node emits Shutdown when the bag is over and
    raises (launch's exit code 1) when the player failed, as `vlm-nav bringup replay` stops
    the stack and exits 1.
    """
    tree = ast.parse((LAUNCH / 'replay.launch.py').read_text())
    calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call)]
    players = {target.id for a in ast.walk(tree) if isinstance(a, ast.Assign)
               and isinstance(a.value, ast.Call) and _call_name(a.value) == 'Node'
               and any(k.arg == 'executable' and _const(k.value) == 'bag_player_node'
                       for k in a.value.keywords)
               for target in a.targets if isinstance(target, ast.Name)}
    assert players, 'the player Node is not bound to a name an event handler can target'
    handlers = [inner for c in calls if _call_name(c) == 'RegisterEventHandler'
                for inner in c.args if isinstance(inner, ast.Call)
                and _call_name(inner) == 'OnProcessExit']
    assert len(handlers) == 1, 'no RegisterEventHandler(OnProcessExit(...)) in replay.launch.py'
    kwargs = {k.arg: k.value for k in handlers[0].keywords}
    target = kwargs.get('target_action')
    assert isinstance(target, ast.Name) and target.id in players, 'not targeting the player'
    on_exit = kwargs['on_exit']
    if isinstance(on_exit, ast.Name):      # a function of (event, context)
        on_exit = next(f for f in ast.walk(tree)
                       if isinstance(f, ast.FunctionDef) and f.name == on_exit.id)
    inside = [c for c in ast.walk(on_exit) if isinstance(c, ast.Call)]
    assert 'Shutdown' in {_call_name(c) for c in inside}, 'on_exit does not emit Shutdown'
    assert any(isinstance(n, ast.Raise) for n in ast.walk(on_exit)), \
        'a failed player must make the launch fail (an error raised in the handler)'
    assert any(isinstance(n, ast.Attribute) and n.attr == 'returncode'
               for n in ast.walk(on_exit)), "on_exit does not look at the player's exit code"


def test_replay_launch_handler_with_the_launch_package():
    """Where `launch` is installed: the handler returns a delayed Shutdown or raises."""
    pytest.importorskip('launch_ros')
    from launch.actions import TimerAction
    from launch.events.process import ProcessExited
    spec = importlib.util.spec_from_file_location('replay_launch', LAUNCH / 'replay.launch.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def exited(code):
        return ProcessExited(returncode=code, action=None, name='bag_player_node-1',
                             cmd=['bag_player_node'], cwd=None, env=None, pid=1)
    (timer,) = module._on_player_exit(exited(0), None)
    assert isinstance(timer, TimerAction)
    with pytest.raises(RuntimeError, match='exited with code 1'):
        module._on_player_exit(exited(1), None)


def test_config_declares_exactly_the_node_parameters():
    config = yaml.safe_load((REPO / 'config' / 'vlm_nav.yaml').read_text())
    executables = {s.executable for p in PROFILE_ARGUMENTS for s in profile_nodes(p)}
    for executable in executables:
        declared = declared_parameters(executable)
        in_yaml = set(config[executable]['ros__parameters'])
        assert in_yaml <= declared, f'{executable}: unknown in YAML {in_yaml - declared}'
        missing = declared - in_yaml - {'start_pose'}   # a typed array can't default to []
        assert not missing, f'{executable}: no default in config/vlm_nav.yaml for {missing}'


def test_policy_defaults_are_the_config_file_values():
    """
    Check that PolicyConfig's defaults and config/vlm_nav.yaml's values are the same.

    The navigator declares PolicyConfig's defaults; the YAML sets them again; the no-ROS
    benchmark reads the YAML. A value changed in one place only would make the benchmark
    measure a navigator nobody runs.
    """
    from_yaml = asdict(config_from_parameters(node_parameters('navigator_node')))
    defaults = asdict(PolicyConfig())
    assert from_yaml.keys() == defaults.keys()
    differ = {k: (defaults[k], from_yaml[k]) for k in defaults
              if abs(defaults[k] - from_yaml[k]) > 1e-9}
    assert not differ, f'PolicyConfig default vs config/vlm_nav.yaml: {differ}'


def test_policy_parameters_and_config_file_values_lie_in_their_ranges():
    """
    Check the policy parameters' defaults and config/vlm_nav.yaml values against the ranges.

    Each policy parameter's range sits beside its PolicyConfig default; a default or a
    config/vlm_nav.yaml value outside it would stop navigator_node at start.
    """
    defaults, in_yaml = PolicyConfig(), node_parameters('navigator_node')
    for name, parameter in POLICY_PARAMETERS.items():
        assert parameter.default == getattr(defaults, parameter.field_name)
        assert parameter.low <= parameter.default <= parameter.high, name
        assert parameter.low <= in_yaml[name] <= parameter.high, (name, in_yaml[name])
        assert parameter.description.startswith(f'policy: {parameter.field_name}; ')


def test_bringup_runs_each_executable_from_its_setup_py_module():
    text = (REPO / 'setup.py').read_text()
    scripts = dict(re.findall(r"'([\w-]+) = (vlm_nav\.[\w.]+):main'", text))
    nodes = {name: module for name, module in scripts.items() if name != 'vlm-nav'}
    assert len(nodes) >= 9, nodes
    for executable, module in nodes.items():
        assert node_module(executable) == module, executable
