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
Soak benchmark: the full simulator stack for a while, watching memory, counters and calls.

    python -m vlm_nav.bench.soak --minutes 30 --out bench/results/soak_30min

Starts sim_node, vlm_node, scene_describer_node and navigator_node as processes (as
`vlm-nav bringup sim` does), switches the navigator between search and explore, asks the
VLM a question every second, and samples every process's resident memory (/proc) and the
nodes' /diagnostics counters. Writes to --out:

- samples.csv      t_s, node, rss_mb
- diagnostics.csv  t_s, node, key, value (numeric diagnostics values only)
- calls.csv        t_s, service, outcome (answered / rejected / unanswered), latency_s
- summary.json     RSS slope per process (least squares after the warm-up; also the
                   slope held in each third of the run), call counts,
                   Twist counts (and bad ones), final counters, nodes that died, verdict
- rss.png          RSS over time per process with the fitted slopes

Exit code 0 when every node stayed up, every call was answered (success or a refusal
with a reason), every Twist on cmd_vel was finite and within the navigator's limits, and
no process's RSS grew faster than --max-slope MB/min in every third of the run after the
warm-up (a leak grows throughout; a one-off allocation step does not).
"""

import argparse
import csv
import json
import math
import os
from pathlib import Path
import random
import sys
import tempfile
import threading
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from vlm_nav.bringup.profiles import default_params_file, profile_nodes
from vlm_nav.bringup.supervisor import Stack
from vlm_nav.models import resolve_model as node_resolve
from vlm_nav.testing.tiny import build_tiny_llava
import yaml

REPO = Path(__file__).resolve().parents[2]

# Default bound on RSS growth. A Python node settles within a minute or two (imports,
# torch's allocator, DDS buffers); after that a leak of a few kB per message shows as
# MB per minute. The bound is loose enough for short runs and tight enough for a
# 30-minute one to catch a leak that would exhaust a robot computer in a day.
MAX_SLOPE_MB_PER_MIN = 5.0


def rss_mb(pid: int) -> Optional[float]:
    """Resident set size of a process in MB, from /proc (no psutil needed)."""
    try:
        with open(f'/proc/{pid}/status') as status:
            for line in status:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) / 1024.0
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def slope_mb_per_min(points: List[Tuple[float, float]], warmup_s: float) -> Optional[float]:
    """Least-squares slope of RSS over time after the warm-up, MB per minute."""
    kept = [(t, v) for t, v in points if t >= warmup_s]
    if len(kept) < 3:
        return None
    t, v = np.array(kept).T
    return float(np.polyfit(t / 60.0, v, 1)[0])


def sustained_slope_mb_per_min(points: List[Tuple[float, float]], warmup_s: float,
                               windows: int = 3) -> Optional[float]:
    """
    Return the growth rate held through the whole run after the warm-up.

    The smallest of the least-squares slopes of `windows` consecutive equal stretches. A
    leak grows in every stretch; a one-off allocation (a few MB when a new prompt shape
    first comes through, flat before and after) grows in one, and over a short run its
    step alone reads as several MB/min on the overall slope.
    """
    kept = [(t, v) for t, v in points if t >= warmup_s]
    if len(kept) < 3 * windows:
        return None
    start, end = kept[0][0], kept[-1][0]
    edges = np.linspace(start, end, windows + 1)
    slopes = [slope_mb_per_min([(t, v) for t, v in kept if lo <= t <= hi], lo)
              for lo, hi in zip(edges, edges[1:])]
    return None if None in slopes else min(slopes)


def resolve_model(model: str) -> str:
    """'' = the embedded model when it is there, else a small random LLaVA ('tiny')."""
    if model not in ('', 'tiny'):
        return model
    if model == '':
        embedded = node_resolve('')
        if os.path.isfile(os.path.join(embedded, 'config.json')):
            return embedded
        print(f'[soak] no embedded model at {embedded}; using a small random LLaVA')
    return build_tiny_llava(tempfile.mkdtemp(prefix='soak_tiny_llava_'))


class Driver:
    """The soak's ROS side: diagnostics listener and service caller, spun in a thread."""

    def __init__(self, max_linear: float, max_angular: float):
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import Twist
        from rclpy.executors import MultiThreadedExecutor
        from vlm_nav_interfaces.srv import Ask, SetTarget
        self.Ask, self.SetTarget = Ask, SetTarget
        rclpy.init()
        self.node = rclpy.create_node('soak_driver')
        self.diagnostics: Dict[str, Dict[str, str]] = {}
        self.levels: Dict[str, int] = {}
        self._lock = threading.Lock()
        self.node.create_subscription(DiagnosticArray, '/diagnostics', self._on_diag, 50)
        # Every Twist of the run: finite and within the navigator's limits, or counted bad.
        self.limits = (max_linear, max_angular)
        self.twists = {'count': 0, 'moving': 0, 'bad': 0}
        self.node.create_subscription(Twist, 'cmd_vel', self._on_twist, 50)
        self.ask = self.node.create_client(Ask, 'vlm_nav/ask')
        self.set_target = self.node.create_client(SetTarget, 'vlm_nav/set_target')
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self.executor.spin, daemon=True)
        self._thread.start()

    def _on_diag(self, msg) -> None:
        with self._lock:
            for status in msg.status:
                name = status.name.replace('vlm_nav: ', '')
                self.diagnostics[name] = {kv.key: kv.value for kv in status.values}
                self.levels[name] = int.from_bytes(status.level, 'little') \
                    if isinstance(status.level, bytes) else int(status.level)

    def _on_twist(self, msg) -> None:
        values = (msg.linear.x, msg.linear.y, msg.linear.z, msg.angular.x, msg.angular.y,
                  msg.angular.z)
        with self._lock:
            self.twists['count'] += 1
            self.twists['moving'] += msg.linear.x != 0.0 or msg.angular.z != 0.0
            if not all(math.isfinite(v) for v in values) or \
                    abs(msg.linear.x) > self.limits[0] + 1e-9 or \
                    abs(msg.angular.z) > self.limits[1] + 1e-9:
                self.twists['bad'] += 1

    def snapshot(self) -> Dict[str, Dict[str, str]]:
        with self._lock:
            return {k: dict(v) for k, v in self.diagnostics.items()}

    def call(self, client, request, timeout: float) -> Tuple[str, float, str]:
        """(answered | rejected | unanswered, latency, message)."""
        if not client.wait_for_service(timeout_sec=timeout):
            return 'unanswered', timeout, 'service not available'
        done = threading.Event()
        started = time.monotonic()
        future = client.call_async(request)
        future.add_done_callback(lambda _: done.set())
        if not done.wait(timeout):
            client.remove_pending_request(future)
            return 'unanswered', timeout, 'no answer'
        response = future.result()
        latency = time.monotonic() - started
        return ('answered' if response.success else 'rejected'), latency, response.message

    def close(self) -> None:
        import rclpy
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def plot(samples: Dict[str, List[Tuple[float, float]]], slopes: Dict[str, Optional[float]],
         warmup_s: float, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 5))
    for name, points in samples.items():
        if not points:
            continue
        t, v = np.array(points).T
        line, = ax.plot(t / 60.0, v, label=f'{name} ({_fmt(slopes.get(name))} MB/min)')
        kept = t >= warmup_s
        if slopes.get(name) is not None and kept.sum() >= 3:
            fit = np.polyfit(t[kept] / 60.0, v[kept], 1)
            ax.plot(t[kept] / 60.0, np.polyval(fit, t[kept] / 60.0), '--',
                    color=line.get_color(), linewidth=1)
    ax.axvline(warmup_s / 60.0, color='grey', linestyle=':', label='end of warm-up')
    ax.set_xlabel('minutes')
    ax.set_ylabel('RSS (MB)')
    ax.set_title('vlm_nav soak: resident memory per process (dashed: least-squares fit)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _fmt(value: Optional[float]) -> str:
    return 'n/a' if value is None else f'{value:+.2f}'


def run(args) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault('ROS_DOMAIN_ID', str(random.randint(101, 200)))
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    model = resolve_model(args.model)
    specs = profile_nodes('sim', model=model, target=args.target, seed=args.seed)
    for spec in specs:
        if spec.executable == 'vlm_node':
            spec.parameters['threads'] = args.threads
        if spec.executable == 'navigator_node':
            spec.parameters.update({'mode': 'search', 'target': args.target})
    duration_s = args.minutes * 60.0
    warmup_s = min(args.warmup_s, duration_s / 3.0)
    print(f'[soak] {args.minutes} min on domain {os.environ["ROS_DOMAIN_ID"]}, model {model}, '
          f'results in {out}')
    log_dir = out / 'logs'
    log_dir.mkdir(exist_ok=True)
    samples: Dict[str, List[Tuple[float, float]]] = {s.name: [] for s in specs}
    diag_rows: List[Tuple] = []
    call_rows: List[Tuple] = []
    counts = {'answered': 0, 'rejected': 0, 'unanswered': 0}
    params_file = args.params_file or default_params_file()
    with open(params_file) as f:
        navigator = yaml.safe_load(f)['navigator_node']['ros__parameters']
    driver = Driver(navigator['max_linear_speed'], navigator['max_angular_speed'])
    stack = Stack(specs, params_file, echo=False,
                  log_dir=str(log_dir))
    try:
        stack.start()
        # Ready = the model answers; the soak clock starts then (loading is not soak).
        ready_by = time.monotonic() + args.ready_timeout_s
        while time.monotonic() < ready_by:
            outcome, _, message = driver.call(driver.ask, driver.Ask.Request(
                question='Is the path ahead clear?', choices=['yes', 'no']), 10.0)
            if outcome == 'answered':
                break
            time.sleep(1.0)
        else:
            print(f'[soak] the VLM never answered: {message}')
            return 2
        start = time.monotonic()
        next_sample = next_call = next_switch = 0.0
        modes = [('explore', ''), ('search', args.target)]
        switch = 0
        while True:
            t = time.monotonic() - start
            if t >= duration_s or stack.dead():
                break
            if t >= next_call:
                next_call += 1.0 / args.ask_hz
                outcome, latency, message = driver.call(driver.ask, driver.Ask.Request(
                    question=f'Is there a {args.target}?', choices=['yes', 'no']), 10.0)
                counts[outcome] += 1
                call_rows.append((round(t, 3), 'ask', outcome, round(latency, 4), message))
            if t >= next_switch:
                next_switch += args.switch_s
                mode, target = modes[switch % 2]
                switch += 1
                outcome, latency, message = driver.call(driver.set_target, driver.SetTarget
                                                        .Request(mode=mode, target=target), 10.0)
                counts[outcome] += 1
                call_rows.append((round(t, 3), 'set_target', outcome, round(latency, 4),
                                  message))
            if t >= next_sample:
                next_sample += args.sample_s
                line = []
                for name, process in stack.processes.items():
                    value = rss_mb(process.pid)
                    if value is not None:
                        samples[name].append((t, value))
                        line.append(f'{name.replace("_node", "")} {value:.0f}')
                for node, values in driver.snapshot().items():
                    for key, value in values.items():
                        try:
                            diag_rows.append((round(t, 3), node, key, float(value)))
                        except ValueError:
                            pass
                print(f'[soak] {t / 60.0:5.1f}/{args.minutes:g} min  RSS MB: '
                      f'{", ".join(line)}  calls {counts}', flush=True)
            time.sleep(0.05)
        dead = stack.dead()
    finally:
        stack.stop()
        final = driver.snapshot()
        twists = dict(driver.twists)
        driver.close()

    slopes = {name: slope_mb_per_min(points, warmup_s) for name, points in samples.items()}
    sustained = {name: sustained_slope_mb_per_min(points, warmup_s)
                 for name, points in samples.items()}
    with open(out / 'samples.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['t_s', 'node', 'rss_mb'])
        for name, points in samples.items():
            writer.writerows((round(t, 3), name, round(v, 2)) for t, v in points)
    with open(out / 'diagnostics.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['t_s', 'node', 'key', 'value'])
        writer.writerows(diag_rows)
    with open(out / 'calls.csv', 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['t_s', 'service', 'outcome', 'latency_s', 'message'])
        writer.writerows(call_rows)
    plot(samples, slopes, warmup_s, out / 'rss.png')
    too_fast = {n: s for n, s in sustained.items() if s is not None and s > args.max_slope}
    ok = not dead and counts['unanswered'] == 0 and not too_fast and not twists['bad']
    latencies = [row[3] for row in call_rows if row[1] == 'ask' and row[2] != 'unanswered']
    problems = ([f'died: {dead}'] if dead else []) + \
        ([f'{counts["unanswered"]} calls unanswered'] if counts['unanswered'] else []) + \
        [f'{n} RSS grows {s:.2f} MB/min in every third of the run'
         for n, s in too_fast.items()] + \
        ([f'{twists["bad"]} Twists non-finite or over the limits'] if twists['bad'] else [])
    summary = {
        'minutes': args.minutes, 'model': model, 'warmup_s': warmup_s,
        'max_slope_mb_per_min': args.max_slope,
        'rss_slope_mb_per_min': slopes,
        'rss_sustained_slope_mb_per_min': sustained,
        'rss_mb': {n: {'first': p[0][1], 'last': p[-1][1], 'max': max(v for _, v in p)}
                   for n, p in samples.items() if p},
        'calls': counts, 'twists': twists,
        'ask_latency_s': {'mean': float(np.mean(latencies)) if latencies else None,
                          'max': float(np.max(latencies)) if latencies else None},
        'dead': dead, 'final_diagnostics': final, 'ok': ok,
        'problems': problems,
    }
    (out / 'summary.json').write_text(json.dumps(summary, indent=2))
    print(f'[soak] RSS slopes (MB/min, after {warmup_s:.0f} s warm-up; in brackets the '
          'slope held in every third of the run): '
          + ', '.join(f'{n} {_fmt(s)} ({_fmt(sustained[n])})' for n, s in slopes.items()))
    print(f'[soak] calls: {counts}; Twists: {twists}; dead: {dead or "none"}; '
          f'{"OK" if ok else "FAILED: " + "; ".join(summary["problems"])}')
    print(f'[soak] wrote {out}/summary.json, samples.csv, diagnostics.csv, calls.csv, rss.png')
    return 0 if ok else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--minutes', type=float, default=30.0)
    parser.add_argument('--out', default=str(REPO / 'bench' / 'results' / 'soak'))
    parser.add_argument('--model', default='',
                        help="HF id or folder; '' = embedded (else tiny); 'tiny' = small "
                             'random LLaVA')
    parser.add_argument('--target', default='red ball')
    parser.add_argument('--seed', type=int, default=0, help='simulator layout')
    parser.add_argument('--threads', type=int, default=1, help='vlm_node torch threads')
    parser.add_argument('--sample-s', type=float, default=5.0, help='sampling period')
    parser.add_argument('--warmup-s', type=float, default=120.0,
                        help='left out of the slope fit (at most a third of the run)')
    parser.add_argument('--ask-hz', type=float, default=1.0)
    parser.add_argument('--switch-s', type=float, default=60.0,
                        help='switch search <-> explore this often')
    parser.add_argument('--max-slope', type=float, default=MAX_SLOPE_MB_PER_MIN,
                        help='MB/min of RSS growth, held in every third of the run, that '
                             'fails the soak')
    parser.add_argument('--ready-timeout-s', type=float, default=180.0)
    parser.add_argument('--params-file', default=None)
    return run(parser.parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
