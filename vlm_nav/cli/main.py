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
import sys
import time
from types import ModuleType
from typing import Dict, Optional, Sequence

from vlm_nav.bringup.profiles import default_params_file, PROFILE_ARGUMENTS, profile_nodes
from vlm_nav.bringup.supervisor import ros_value, Stack

REPLAY_DRAIN_S = 3.0    # after a replay ends, before the stack stops

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


def _bringup(args) -> int:
    if args.profile == 'replay' and not args.bag:
        print('replay needs --bag PATH (a rosbag2 folder)')
        return 2
    specs = profile_nodes(args.profile, model=args.model, target=args.target,
                          seed=args.seed, bag=args.bag, record=args.record,
                          monitor=args.monitor, scenario_file=args.scenario_file,
                          scenarios=args.scenarios, alert_dir=args.alert_dir)
    with Stack(specs, args.params_file) as stack:
        print(f'[vlm-nav] {args.profile}: started ' +
              ', '.join(s.name for s in specs) + ' (Ctrl-C stops)')
        try:
            while not stack.dead():
                time.sleep(0.5)
            if stack.dead() == ['bag_player_node'] and \
                    stack.processes['bag_player_node'].returncode == 0:
                # The bag is over: the end of the input, not a failure. The last frames'
                # answers and decisions are still on their way.
                print(f'[vlm-nav] replay finished; stopping in {REPLAY_DRAIN_S:.0f} s')
                time.sleep(REPLAY_DRAIN_S)
                return 0
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
    sub = parser.add_subparsers(dest='command', required=True)

    bringup = sub.add_parser('bringup', help='start a profile (like ros2 launch)')
    bringup.add_argument('profile', choices=sorted(PROFILE_ARGUMENTS))
    bringup.add_argument('--params-file', default=None)
    bringup.add_argument('--model', default='', help="HF id or folder; '' = embedded")
    bringup.add_argument('--target', default='', help='search target (search/sim/replay)')
    bringup.add_argument('--bag', default='', help='rosbag2 to replay (replay)')
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
                        help='default: camera, descriptions, navigator state, cmd_vel')
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
    if args.command == 'bringup':
        args.params_file = args.params_file or default_params_file()
        return _bringup(args)
    if args.command == 'record':
        return _record(args)
    module = benches.get(args.bench) if args.command == 'bench' else modules.get(args.command)
    if module is not None:
        return module.run(args)
    parser.error(f'unknown command {args.command}')
    return 2


if __name__ == '__main__':
    sys.exit(main())
