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
vlm_node as a managed node, driven as `ros2 lifecycle set /vlm_node <transition>` drives it.

Real vlm_node processes over DDS; the client is what ros2lifecycle's `set` verb does
(ros2cli is not on the pip path): get_available_transitions, the transition of that
label, change_state with it. The model whose memory cleanup must free is a LLaVA of real
classes, random weights, with a language model wide enough (55 M parameters, 219 MB) that
its memory stands out of the process's RSS, read from /proc/<pid>/status. The navigator
case runs the sim stack (sim_node, vlm_node with the embedded model, navigator_node).
"""

from contextlib import contextmanager
import os
from pathlib import Path
import re
import time

from conftest import claim_domain, held_up_s, Probe, release_domain, running_stack, stamp_s
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetAvailableTransitions, GetState
import pytest
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import NodeSpec, profile_nodes
from vlm_nav.testing.tiny import build_tiny_llava
from vlm_nav_interfaces.msg import NavigatorState
from vlm_nav_interfaces.srv import Ask, Describe, Observe

pytestmark = pytest.mark.ros

NODE = '/vlm_node'
ACTIVATE_HINT = f'ros2 lifecycle set {NODE} activate'
LOAD_TIMEOUT_S = 120.0
SEED = 5                                 # the simulator's world: red ball at (0.06, 0.05)
START = [1.86, 0.05, 0.0]                # 1.8 m east of it, facing away: it has to search
PERCEPTION_TIMEOUT_S = 1.0               # navigator perception_timeout_s (config default)
CONTROL_PERIOD_S = 1.0 / 20.0            # navigator control_rate_hz (config default)


# ---- the lifecycle client: what `ros2 lifecycle get/set` do ----------------------------------
def lifecycle_state(probe: Probe, node: str = NODE) -> str:
    return probe.call(GetState, f'{node}/get_state', GetState.Request()).current_state.label


def available_transitions(probe: Probe, node: str = NODE):
    return [t.transition for t in probe.call(
        GetAvailableTransitions, f'{node}/get_available_transitions',
        GetAvailableTransitions.Request()).available_transitions]


def lifecycle_set(probe: Probe, transition: str, node: str = NODE,
                  timeout: float = LOAD_TIMEOUT_S) -> bool:
    """`ros2 lifecycle set node transition`: the available transition of that label."""
    available = available_transitions(probe, node)
    match = [t for t in available if t.label == transition]
    assert match, f'{transition} is not available: {[t.label for t in available]}'
    return probe.call(ChangeState, f'{node}/change_state',
                      ChangeState.Request(transition=match[0]), timeout).success


def wait_state(probe: Probe, state: str, timeout: float = LOAD_TIMEOUT_S) -> None:
    seen = []

    def reached():
        seen.append(lifecycle_state(probe))
        return seen[-1] == state
    assert probe.wait_for(reached, timeout), f'never {state}; states seen: {sorted(set(seen))}'


# ---- helpers -----------------------------------------------------------------------------------
def process_rss_mb(pid: int) -> float:
    """Return a process's resident memory (VmRSS) in MB."""
    for line in Path(f'/proc/{pid}/status').read_text().splitlines():
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) / 1024.0
    raise AssertionError(f'no VmRSS for process {pid}')


def ask(probe: Probe) -> Ask.Response:
    """Ask a closed-set question about a sent image (no camera needed)."""
    image = Image(height=8, width=8, encoding='rgb8', step=24, data=bytes(range(192)))
    return probe.call(Ask, 'vlm_nav/ask', Ask.Request(
        question='Is there a red ball?', choices=['yes', 'no'], image=image), timeout=60.0)


def build_wide_llava(path: Path) -> str:
    """Save the tiny LLaVA with a 768-wide, 6-layer language model (55 M parameters)."""
    import torch    # deferred: heavy
    from transformers import GenerationConfig, LlavaConfig, LlavaForConditionalGeneration
    build_tiny_llava(path)
    config = LlavaConfig.from_pretrained(path)
    text = config.text_config
    text.hidden_size, text.intermediate_size, text.num_hidden_layers = 768, 3072, 6
    text.head_dim = text.hidden_size // text.num_attention_heads
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig.from_pretrained(path)
    model.save_pretrained(path)
    return str(path)


@contextmanager
def own_domain(name: str, specs, log_dir: Path):
    """Run specs and a probe in a DDS domain of their own (each has a vlm_node)."""
    saved = os.environ['ROS_DOMAIN_ID']
    domain = claim_domain()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    try:
        with running_stack(specs, log_dir) as running:
            probe = Probe(name)
            try:
                yield running, probe
            finally:
                probe.close()
    finally:
        os.environ['ROS_DOMAIN_ID'] = saved
        release_domain(domain)


# ---- one vlm_node through every transition --------------------------------------------------
@pytest.fixture(scope='module')
def wide_model(tmp_path_factory) -> str:
    return build_wide_llava(tmp_path_factory.mktemp('wide_llava'))


@pytest.fixture(scope='module')
def managed(ros_domain, wide_model, tmp_path_factory):
    """Start vlm_node as `vlm-nav bringup` does (autostart from config/vlm_nav.yaml)."""
    log_dir = tmp_path_factory.mktemp('logs')
    specs = [NodeSpec('vlm_node', 'vlm_node', {'model': wide_model, 'threads': 1})]
    with running_stack(specs, log_dir) as running:
        running.log = log_dir / 'vlm_node.log'
        running.pid = running.processes['vlm_node'].pid
        yield running


@pytest.fixture(scope='module')
def bot(managed):
    probe = Probe('lifecycle_probe')
    probe.record(DiagnosticArray, '/diagnostics')
    yield probe
    probe.close()


def test_autostart_configures_and_activates(managed, bot):
    wait_state(bot, 'active')
    response = ask(bot)
    assert response.success, response.message
    assert sorted(t.label for t in available_transitions(bot)) == ['deactivate', 'shutdown']
    assert bot.next_diagnostics('vlm_node')['lifecycle_state'] == 'active'


def test_deactivate_refuses_requests_and_says_how_to_activate(managed, bot):
    wait_state(bot, 'active')
    assert lifecycle_set(bot, 'deactivate')
    assert lifecycle_state(bot) == 'inactive'
    for srv_type, name, request in [
            (Ask, 'vlm_nav/ask', Ask.Request(question='Is there a door?', choices=['yes', 'no'])),
            (Observe, 'vlm_nav/observe', Observe.Request(target='red ball')),
            (Describe, 'vlm_nav/describe', Describe.Request())]:
        response = bot.call(srv_type, name, request)
        assert not response.success, name
        assert 'inactive' in response.message and ACTIVATE_HINT in response.message, \
            response.message
    diagnostics = bot.next_diagnostics('vlm_node')
    assert diagnostics['lifecycle_state'] == 'inactive'
    assert diagnostics['_level'] == DiagnosticStatus.WARN
    assert 'inactive' in diagnostics['_message'] and ACTIVATE_HINT in diagnostics['_message']
    assert diagnostics['model_state'] == 'ready'        # deactivate keeps the model

    assert lifecycle_set(bot, 'activate')
    response = ask(bot)
    assert response.success, response.message


def test_a_transition_the_state_lacks_is_refused_and_the_node_goes_on(managed, bot):
    wait_state(bot, 'active')
    # By id, as a raw service call may send it (ros2 lifecycle set checks first).
    cleanup = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CLEANUP))
    assert not bot.call(ChangeState, f'{NODE}/change_state', cleanup).success
    configure = ChangeState.Request(transition=Transition(label='configure'))
    assert not bot.call(ChangeState, f'{NODE}/change_state', configure).success
    assert lifecycle_state(bot) == 'active'
    assert not managed.dead()
    assert ask(bot).success


def test_cleanup_frees_the_model_memory(managed, bot, wide_model):
    wait_state(bot, 'active')
    assert ask(bot).success                 # every weight touched: resident
    model_mb = (Path(wide_model) / 'model.safetensors').stat().st_size / 2 ** 20
    assert lifecycle_set(bot, 'deactivate')
    before = process_rss_mb(managed.pid)
    assert lifecycle_set(bot, 'cleanup')
    after = process_rss_mb(managed.pid)
    print(f'vlm_node RSS {before:.0f} MB -> {after:.0f} MB after cleanup '
          f'(model file {model_mb:.0f} MB)')
    assert before - after > 0.7 * model_mb, (before, after, model_mb)
    assert lifecycle_state(bot) == 'unconfigured'

    # The log says the same, in the node's own measurement.
    logged = re.findall(r'cleanup: model freed \(\S+\); RSS (\d+) MB -> (\d+) MB',
                        managed.log.read_text())
    assert logged, 'no cleanup line in the log'
    logged_before, logged_after = map(float, logged[-1])
    assert logged_before - logged_after > 0.7 * model_mb, logged[-1]

    diagnostics = bot.next_diagnostics('vlm_node')
    assert diagnostics['lifecycle_state'] == 'unconfigured'
    assert diagnostics['model_state'] == 'unloaded'
    assert 'cleanup: RSS' in diagnostics['last_cleanup']
    response = ask(bot)
    assert not response.success
    assert 'unconfigured' in response.message and \
        f'ros2 lifecycle set {NODE} configure' in response.message, response.message
    managed.rss_after_cleanup = after


def test_configure_after_cleanup_loads_the_model_again(managed, bot, wide_model):
    if lifecycle_state(bot) != 'unconfigured':
        pytest.skip('needs the cleanup test first')
    model_mb = (Path(wide_model) / 'model.safetensors').stat().st_size / 2 ** 20
    assert lifecycle_set(bot, 'configure')
    assert lifecycle_state(bot) == 'inactive'
    assert bot.next_diagnostics('vlm_node')['model_state'] == 'ready'
    assert lifecycle_set(bot, 'activate')
    response = ask(bot)
    assert response.success, response.message
    # Answered by the model loaded again: its weights are resident once more.
    assert process_rss_mb(managed.pid) - managed.rss_after_cleanup > 0.7 * model_mb


def test_shutdown_ends_the_process_cleanly(managed, bot):
    wait_state(bot, 'active')
    assert lifecycle_set(bot, 'shutdown')
    process = managed.processes['vlm_node']
    assert process.wait(10.0) == 0
    log = managed.log.read_text()
    assert re.search(r'shutdown: model freed \(\S+\); RSS \d+ MB -> \d+ MB', log), log[-2000:]
    assert 'Traceback' not in log, log[-2000:]


# ---- autostart false ---------------------------------------------------------------------------
def test_autostart_false_waits_unconfigured(ros_domain, tiny_llava_dir, tmp_path):
    specs = [NodeSpec('vlm_node', 'vlm_node', {'model': tiny_llava_dir, 'threads': 1,
                                               'autostart': False})]
    with own_domain('waiting_probe', specs, tmp_path) as (running, probe):
        probe.record(DiagnosticArray, '/diagnostics')
        assert lifecycle_state(probe) == 'unconfigured'
        time.sleep(2.0)                     # time enough to have loaded the tiny model
        diagnostics = probe.next_diagnostics('vlm_node')
        assert diagnostics['lifecycle_state'] == 'unconfigured'
        assert diagnostics['model_state'] == 'unloaded'
        assert diagnostics['_level'] == DiagnosticStatus.WARN
        assert f'ros2 lifecycle set {NODE} configure' in diagnostics['_message']
        assert lifecycle_state(probe) == 'unconfigured'
        response = ask(probe)
        assert not response.success and 'unconfigured' in response.message, response.message
        assert [t.label for t in available_transitions(probe)] == ['configure', 'shutdown']

        assert lifecycle_set(probe, 'configure')
        assert lifecycle_state(probe) == 'inactive'
        assert 'inactive' in ask(probe).message
        assert lifecycle_set(probe, 'activate')
        response = ask(probe)
        assert response.success, response.message
        assert not running.dead()


# ---- the navigator: an inactive VLM is a dead one -------------------------------------------
def _zero(t) -> bool:
    return t.linear.x == 0.0 and t.angular.z == 0.0


def _moving(probe: Probe, since: float, window: int = 10) -> bool:
    """Return whether the last window Twists after since all move, on fresh perception."""
    twists = [m for t, m in probe.timed('cmd_vel') if t > since][-window:]
    states = [m for t, m in probe.timed('vlm_nav/navigator_state') if t > since][-window:]
    return (len(twists) == window and not any(_zero(t) for t in twists) and
            len(states) == window and not any(s.stale for s in states))


def test_navigator_stops_while_vlm_node_is_inactive(ros_domain, tmp_path):
    specs = profile_nodes('sim', seed=SEED)
    specs[0].parameters['start_pose'] = START
    # near_threshold 1.0: it never 'arrives' (an arrival would stop it for another reason)
    specs[3].parameters.update({'mode': 'search', 'target': 'red ball', 'near_threshold': 1.0,
                                'visualization_rate_hz': 0.0})
    specs = [s for s in specs if s.name != 'scene_describer_node']
    with own_domain('navigator_probe', specs, tmp_path) as (running, probe):
        probe.record(Twist, 'cmd_vel')
        probe.record(NavigatorState, 'vlm_nav/navigator_state')
        assert probe.wait_for(lambda: _moving(probe, 0.0), LOAD_TIMEOUT_S), \
            f'never moved; last state: {probe.messages("vlm_nav/navigator_state")[-1:]}'

        fault_clock_s = probe.node.get_clock().now().nanoseconds * 1e-9
        fault = time.monotonic()
        assert lifecycle_set(probe, 'deactivate')

        def stopped():
            """Return the first zero Twist after the last moving one, once held for 2 s."""
            states = [s for s in probe.messages('vlm_nav/navigator_state')
                      if stamp_s(s) > fault_clock_s]
            last_moving = max((i for i, s in enumerate(states)
                               if s.linear_x != 0.0 or s.angular_z != 0.0), default=-1)
            if last_moving == len(states) - 1:
                return None
            stop = states[last_moving + 1]
            return stop if stamp_s(states[-1]) >= stamp_s(stop) + 2.0 else None
        assert probe.wait_for(lambda: stopped() is not None, PERCEPTION_TIMEOUT_S + 10.0), \
            'still moving, or not publishing, with vlm_node inactive'
        stop = stopped()
        latency = stamp_s(stop) - fault_clock_s
        print(f'deactivate -> zero Twist published: {latency * 1e3:.0f} ms '
              f'(perception_timeout_s {PERCEPTION_TIMEOUT_S} s)')
        assert stop.stale, f'stopped, but not by the stale-perception stop: {stop.reason}'
        assert 'inactive' in stop.reason, stop.reason     # vlm_node's reason, passed on
        # The last frame answered was taken before the deactivation: the stop comes within
        # the timeout and a control period, plus delivery; a hold-up of the navigator's
        # process (a loaded machine) is added.
        held_up = held_up_s(probe.messages('vlm_nav/navigator_state'), stop, CONTROL_PERIOD_S,
                            fault_clock_s)
        assert latency <= PERCEPTION_TIMEOUT_S + CONTROL_PERIOD_S + 0.3 + held_up, \
            (latency, held_up)
        held = [m for t, m in probe.timed('cmd_vel') if t > fault + latency + 0.5]
        assert held and all(_zero(m) for m in held), 'cmd_vel moved while vlm_node was inactive'

        assert lifecycle_set(probe, 'activate')
        reactivated = time.monotonic()
        assert probe.wait_for(lambda: _moving(probe, reactivated), 30.0), \
            'no motion after vlm_node was activated again'
        assert not running.dead()
