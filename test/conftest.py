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
Shared fixtures: a private DDS domain, a probe node, stacks of real node processes.

Each test module gets its own DDS domain; the probe node spins in a thread; stacks of real
vlm_nav node processes start the way `vlm-nav bringup` starts them.
"""

from contextlib import contextmanager
import os
from pathlib import Path
import random
import threading
import time
from typing import Callable, Dict, List

import pytest

from vlm_nav.bringup.profiles import default_params_file
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.testing.tiny import build_tiny_llava, BUILDERS

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def running_stack(specs, log_dir: Path):
    """Run node processes as `vlm-nav bringup` starts them; print their log tails afterwards."""
    with Stack(specs, default_params_file(), echo=False, log_dir=str(log_dir)) as running:
        yield running
    for spec in specs:
        print(f'--- {spec.name} log ---')
        print((Path(log_dir) / f'{spec.name}.log').read_text()[-2000:])


@pytest.fixture(scope='module')
def one_torch_thread():
    """
    Run in-process models on one torch thread.

    Two threads on 2 cores shared with other processes spin and run ~10x slower.
    """
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def tiny_llava_dir(tmp_path_factory) -> str:
    """Save a small LlavaForConditionalGeneration (real classes, random weights) to disk."""
    path = tmp_path_factory.mktemp('tiny_llava')
    build_tiny_llava(path)
    return str(path)


@pytest.fixture(scope='session')
def family_model_dir(tmp_path_factory) -> Callable[[str], str]:
    """
    Map a registry family's name to the folder of a small model of that family.

    The builders are vlm_nav.testing.tiny.BUILDERS; each model is built on first use and
    kept for the session.
    """
    root = tmp_path_factory.mktemp('families')
    built: Dict[str, str] = {}

    def get(name: str) -> str:
        if name not in built:
            built[name] = BUILDERS[name](root / name)
        return built[name]
    return get


@pytest.fixture(scope='module')
def backends(family_model_dir) -> Callable:
    """Map a family's name to its small model's backend, loaded once per test module."""
    from vlm_nav.models import load_backend
    loaded = {}

    def get(name):
        if name not in loaded:
            loaded[name] = load_backend(family_model_dir(name))
        return loaded[name]
    return get


def language_model(model):
    """Return the decoder of a vision-language model, wherever its class keeps it."""
    for path in ('model.language_model', 'language_model', 'model.text_model'):
        obj = model
        for part in path.split('.'):
            obj = getattr(obj, part, None)
        if obj is not None:
            return obj
    raise AssertionError(f'no language model in {type(model).__name__}')


# ROS domains in use by this test session. Only 1-101: above that Fast DDS's ports fall in
# Linux's ephemeral port range (vlm-nav doctor warns about it), where any socket may hold one.
_claimed_domains = set()


def claim_domain() -> int:
    """Return a random domain id no other fixture of this session holds; release_domain() it."""
    domain = random.choice([d for d in range(1, 102) if d not in _claimed_domains])
    _claimed_domains.add(domain)
    return domain


def release_domain(domain: int) -> None:
    _claimed_domains.discard(domain)


@pytest.fixture(scope='module')
def ros_domain():
    """Set a random ROS_DOMAIN_ID for this module's processes and probes; localhost only."""
    saved = {k: os.environ.get(k) for k in ('ROS_DOMAIN_ID', 'ROS_AUTOMATIC_DISCOVERY_RANGE')}
    domain = claim_domain()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
    yield domain
    release_domain(domain)
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def time_s(t) -> float:
    """Return a builtin_interfaces/Time in seconds."""
    return t.sec + t.nanosec * 1e-9


def stamp_s(msg) -> float:
    """Return a message's `stamp` (NavigatorState) in seconds."""
    return time_s(msg.stamp)


def held_up_s(states: List, stop, period: float, since_s: float) -> float:
    """
    Return how long the navigator's process was held up between a fault and a stop.

    The fault is at `since_s`; states are NavigatorStates as received, `stop` one of them.
    The result is the sum of every gap between consecutive states beyond a tick and a half.
    Such gaps are the scheduler on a loaded machine (a full-suite run can show one of 1.03 s
    a tick before the stop), not the watchdog being late, so a stop deadline is extended by
    them; a watchdog that is late while ticking at its rate gets nothing.
    """
    index = next(i for i, s in enumerate(states) if s is stop)
    first = max((i for i in range(index) if stamp_s(states[i]) <= since_s), default=0)
    stamps = [stamp_s(s) for s in states[first:index + 1]]
    return sum(max(0.0, later - earlier - 1.5 * period)
               for earlier, later in zip(stamps, stamps[1:]))


class Probe:
    """A test node in its own context, spun in a background thread; records messages."""

    def __init__(self, name: str = 'test_probe'):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor
        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self.received: Dict[str, List] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def record(self, msg_type, topic: str, qos=10) -> None:
        self.received[topic] = []

        def store(msg, topic=topic):
            with self._lock:
                self.received[topic].append((time.monotonic(), msg))
        self.node.create_subscription(msg_type, topic, store, qos)

    def messages(self, topic: str) -> List:
        with self._lock:
            return [m for _, m in self.received[topic]]

    def timed(self, topic: str) -> List:
        with self._lock:
            return list(self.received[topic])

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()

    def diagnostics(self, node: str, since: float = 0.0):
        """
        Return the newest /diagnostics values of a vlm_nav node received after `since`.

        `since` is monotonic time; the status level and message come as `_level` /
        `_message`; None if none yet.
        """
        for t, array in reversed(self.timed('/diagnostics')):
            if t < since:
                break
            for status in array.status:
                if status.name == f'vlm_nav: {node}':
                    return dict({kv.key: kv.value for kv in status.values},
                                _level=status.level, _message=status.message)
        return None

    def next_diagnostics(self, node: str, timeout: float = 5.0) -> Dict[str, str]:
        """Wait for the first /diagnostics of node published after now (counters up to date)."""
        since = time.monotonic()
        assert self.wait_for(lambda: self.diagnostics(node, since) is not None, timeout), \
            f'no /diagnostics from {node} within {timeout} s'
        return self.diagnostics(node, since)

    def call(self, srv_type, name: str, request, timeout: float = 20.0):
        client = self.node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=timeout), f'{name} not available'
        future = client.call_async(request)
        assert self.wait_for(future.done, timeout), f'{name} did not answer in {timeout} s'
        return future.result()

    def close(self) -> None:
        self.executor.shutdown()
        self._thread.join(5.0)      # no callback may still run while the node is destroyed
        self.node.destroy_node()
        import rclpy
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def probe(ros_domain):
    p = Probe()
    yield p
    p.close()


class AheadObserve:
    """
    A real Observe service (vlm_nav/observe on node) that sees the target ahead.

    On a fresh frame it answers that the target is ahead and far with the path clear
    (center_prob, 1 - center_prob split over the sides), until alive is set False (the
    camera died).
    """

    def __init__(self, node, center_prob: float = 0.9):
        from vlm_nav_interfaces.srv import Observe
        self.node, self.alive, self.center = node, True, center_prob
        node.create_service(Observe, 'vlm_nav/observe', self.observe)

    def observe(self, request, response):
        if not self.alive:
            response.success, response.message = False, 'no frame: camera silent'
            return response
        side = (1.0 - self.center) / 2.0
        o = response.observation
        o.target = request.target
        o.header.stamp = self.node.get_clock().now().to_msg()
        o.visible_prob = 0.95
        o.bearing_labels, o.bearing_probs = ['left', 'center', 'right'], [side, self.center,
                                                                          side]
        o.distance_labels, o.distance_probs = ['near', 'far'], [0.05, 0.95]
        o.path_clear_prob = 1.0
        response.success = True
        return response


@contextmanager
def spinning(context, *nodes):
    """
    Spin nodes of their own rclpy context on a thread.

    On the way out, destroy them and shut the context down.
    """
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    try:
        yield executor
    finally:
        executor.shutdown()
        spinner.join(5.0)
        for node in nodes:
            node.destroy_node()
        rclpy.shutdown(context=context)
