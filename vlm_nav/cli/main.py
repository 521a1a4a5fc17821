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

"""`vlm-nav`: bringup profiles, the simulator demo, training and evaluation on the pip path."""

import argparse
import importlib
import os
import sys
import time
from types import ModuleType
from typing import Callable, Dict, Optional, Sequence

from vlm_nav import debug_requested
from vlm_nav.bringup.profiles import default_params_file, PROFILE_ARGUMENTS, profile_nodes
from vlm_nav.bringup.supervisor import ros_value, Stack

REPLAY_DRAIN_S = 3.0    # after a replay ends, before the stack stops
FAILED = 'replay failed: '    # bag_player_node's line saying why (vlm_nav.bag_player_node)

# Errors any subcommand reports as one line (`vlm-nav: error: ...`, exit 1) instead of a
# traceback: what a user can fix (a bag, a model, a scenario file, a path, a server). By
# class (module.name), so that none of their modules is imported here.
REPORTED_ERRORS = (
    'vlm_nav.ros.bags.BagError',
    'vlm_nav.models.base.ModelLoadError',
    'vlm_nav.models.registry.UnsupportedModel',
    'vlm_nav.models.served.ServedError',
    'vlm_nav.monitor.scenarios.ScenarioError',
    'builtins.OSError',         # a file or folder missing, unreadable or unwritable
)

# The subcommands that live in modules of their own: name -> (module, help). A module is
# imported only when its subcommand runs, not at the top: demo, evaluate-bag, record and
# the benchmarks import numpy, rosbags or ROS messages, and `vlm-nav doctor` must be able
# to report such a package missing rather than fail to start.
COMMANDS = {
    'demo': ('vlm_nav.cli.demo', 'explore, then search for a target in the simulator'),
    'evaluate-bag': ('vlm_nav.cli.evaluate_bag', "score a model on a bag's ground truth"),
    'doctor': ('vlm_nav.cli.doctor', 'check this machine and a model: what is wrong and how '
               'to fix it'),
}
BENCHES = {
    'nav': ('vlm_nav.bench.nav', 'closed-loop search on held-out layouts: original vs scored '
            'vs oracle perception'),
    'served': ('vlm_nav.bench.served', 'N robots sharing one model server: latency per robot '
               'and throughput as N grows'),
    'model': ('vlm_nav.bench.model', 'decision latency and memory per model and precision: '
              'scoring vs generate-then-parse vs bare prefill'),
}


def _reported(error: BaseException) -> bool:
    return any(f'{c.__module__}.{c.__qualname__}' in REPORTED_ERRORS
               for c in type(error).__mro__)


def _run_reporting_errors(run: Callable[[argparse.Namespace], int],
                          args: argparse.Namespace) -> int:
    """
    Run a subcommand; an error it reports becomes one line on stderr and exit code 1.

    The line is `vlm-nav: error: MESSAGE` (the message names the file and what to do);
    --debug or VLM_NAV_DEBUG=1 shows the traceback instead.
    """
    try:
        return run(args)
    except Exception as error:  # noqa: B902 - only REPORTED_ERRORS are caught; others re-raised
        if debug_requested() or not _reported(error):
            raise
        print(f'vlm-nav: error: {error}', file=sys.stderr, flush=True)
        return 1


def _check_bag(args) -> None:
    """Open the bag to replay and find its camera, before any node starts (BagError if not)."""
    from vlm_nav.ros.bags import Bag     # deferred: rosbags (see COMMANDS)
    with Bag(args.bag, args.distro) as bag:
        camera = bag.select_camera(args.camera_topic)
        print(f'[vlm-nav] replay {bag.describe()}: camera {camera.describe()}', flush=True)


def _player_failure(stack: Stack) -> str:
    """Return why bag_player_node failed: its `replay failed:` line, or its exit code."""
    for line in reversed(stack.output_tail('bag_player_node')):
        if FAILED in line:
            return line.split(FAILED, 1)[1].strip()
    code = stack.processes['bag_player_node'].returncode
    return f'bag_player_node exited with code {code}; its output above says why'


def _bringup(args) -> int:
    if args.profile == 'replay':
        if not args.bag:
            print('vlm-nav: error: bringup replay needs --bag PATH (a rosbag2 folder or '
                  '.mcap/.db3 file)', file=sys.stderr, flush=True)
            return 2
        _check_bag(args)
    specs = profile_nodes(args.profile, model=args.model, target=args.target,
                          seed=args.seed, bag=args.bag, record=args.record,
                          monitor=args.monitor, scenario_file=args.scenario_file,
                          scenarios=args.scenarios, alert_dir=args.alert_dir,
                          camera_topic=args.camera_topic, distro=args.distro)
    with Stack(specs, args.params_file) as stack:
        print(f'[vlm-nav] {args.profile}: started ' +
              ', '.join(s.name for s in specs) + ' (Ctrl-C stops)')
        try:
            while not stack.dead():
                time.sleep(0.5)
            if stack.dead() == ['bag_player_node']:
                if stack.processes['bag_player_node'].returncode == 0:
                    # The bag is over: the end of the input, not a failure. The last
                    # frames' answers and decisions are still on their way.
                    print(f'[vlm-nav] replay finished; stopping in {REPLAY_DRAIN_S:.0f} s')
                    time.sleep(REPLAY_DRAIN_S)
                    return 0
                # A replay that delivered no frame: the player's one line says why.
                print(f'vlm-nav: error: {_player_failure(stack)}', file=sys.stderr,
                      flush=True)
                return 1
            print(f'[vlm-nav] node(s) exited: {", ".join(stack.dead())}; stopping')
            return 1
        except KeyboardInterrupt:
            return 0


def _record(args) -> int:
    from vlm_nav import recorder     # deferred: rclpy and rosbags (see COMMANDS)
    overrides = {'output': args.output, 'storage': args.storage,
                 'max_duration_s': float(args.duration)}
    if args.topics:
        overrides['topics'] = list(args.topics)
    ros_args = ['--ros-args', '--params-file', args.params_file or default_params_file()]
    for name, value in overrides.items():
        ros_args += ['-p', f'{name}:={ros_value(value)}']
    recorder.main(args=['vlm-nav-record'] + ros_args)
    return 0


def _module_parser(sub, name: str, table: Dict[str, tuple],
                   chosen: str) -> Optional[ModuleType]:
    """Add subcommand name; import its module and add its arguments if it is the chosen one."""
    module_name, text = table[name]
    parser = sub.add_parser(name, help=text)
    if name != chosen:
        return None
    module = importlib.import_module(module_name)
    module.add_arguments(parser)
    return module


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # The subcommand, and the benchmark after `bench`: the first words that are no option
    # (before the subcommand and between `bench` and its benchmark there is only -h).
    words = [a for a in argv if not a.startswith('-')] + ['', '']
    modules = {}
    parser = argparse.ArgumentParser(prog='vlm-nav', description=__doc__)
    parser.add_argument('--debug', action='store_true',
                        help='show the traceback of an error (also VLM_NAV_DEBUG=1)')
    sub = parser.add_subparsers(dest='command', required=True)

    bringup = sub.add_parser('bringup', help='start a profile (like ros2 launch)')
    bringup.add_argument('profile', choices=sorted(PROFILE_ARGUMENTS))
    bringup.add_argument('--params-file', default=None)
    bringup.add_argument('--model', default='', help="HF id or folder; '' = embedded")
    bringup.add_argument('--target', default='', help='search target (search/sim/replay)')
    bringup.add_argument('--bag', default='',
                         help='rosbag2 to replay: its folder or one .mcap/.db3 file (replay)')
    bringup.add_argument('--camera-topic', default='',
                         help="replay: the bag's camera topic; '' = its only camera")
    bringup.add_argument('--distro', default='',
                         help='replay: typestore for a bag without stored message '
                         "definitions (humble, jazzy, ...); '' = from the bag")
    bringup.add_argument('--debug', action='store_true', default=argparse.SUPPRESS,
                         help='show the traceback of an error (also VLM_NAV_DEBUG=1)')
    bringup.add_argument('--seed', type=int, default=0, help='simulator layout (sim)')
    bringup.add_argument('--record', default='', help='also record a rosbag2 into this folder')
    bringup.add_argument('--monitor', action='store_true',
                         help='also start monitor_node (sim, replay; the monitor profile has it)')
    bringup.add_argument('--scenario-file', default='',
                         help="monitor: scenario YAML; '' = config/monitor_scenarios.yaml")
    bringup.add_argument('--scenarios', default='',
                         help="monitor: comma-separated scenario ids; '' = the enabled ones")
    bringup.add_argument('--alert-dir', default='',
                         help="monitor: alerts.jsonl and frames/; '' = ./vlm_nav_alerts")

    modules['demo'] = _module_parser(sub, 'demo', COMMANDS, words[0])

    record = sub.add_parser('record', help='record topics to a rosbag2 (like ros2 bag record)')
    record.add_argument('--output', '-o', default='', help='bag folder to create')
    record.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    record.add_argument('--topics', nargs='+', default=None,
                        help='default: camera and camera_info, depth, scan, odom, '
                        'descriptions, navigator state, cmd_vel, debug image, markers, '
                        'ground truth (those published)')
    record.add_argument('--duration', type=float, default=0.0,
                        help='seconds from the first recorded message; 0 = until Ctrl-C')
    record.add_argument('--params-file', default=None)

    modules['evaluate-bag'] = _module_parser(sub, 'evaluate-bag', COMMANDS, words[0])

    bench = sub.add_parser('bench', help='benchmarks').add_subparsers(dest='bench',
                                                                      required=True)
    benches = {name: _module_parser(bench, name, BENCHES,
                                    words[1] if words[0] == 'bench' else '')
               for name in BENCHES}

    modules['doctor'] = _module_parser(sub, 'doctor', COMMANDS, words[0])

    args = parser.parse_args(argv)
    if args.debug:
        os.environ['VLM_NAV_DEBUG'] = '1'     # the nodes a bringup starts inherit it
    if args.command == 'bringup':
        args.params_file = args.params_file or default_params_file()
        return _run_reporting_errors(_bringup, args)
    if args.command == 'record':
        return _run_reporting_errors(_record, args)
    module = benches.get(args.bench) if args.command == 'bench' else modules.get(args.command)
    if module is not None:
        return _run_reporting_errors(module.run, args)
    parser.error(f'unknown command {args.command}')
    return 2


if __name__ == '__main__':
    sys.exit(main())
