"""`vlm-nav`: bringup profiles, the simulator demo, training and evaluation on the pip path."""

import argparse
import sys
import time

from vlm_nav.bringup.supervisor import Stack
from vlm_nav.bringup.profiles import default_params_file, PROFILE_ARGUMENTS, profile_nodes

REPLAY_DRAIN_S = 3.0    # after a replay ends, before the stack stops


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
    from vlm_nav import recorder
    from vlm_nav.bringup.supervisor import ros_value
    overrides = {'output': args.output, 'storage': args.storage,
                 'max_duration_s': float(args.duration)}
    if args.topics:
        overrides['topics'] = list(args.topics)
    ros_args = ['--ros-args', '--params-file', args.params_file or default_params_file()]
    for name, value in overrides.items():
        ros_args += ['-p', f'{name}:={ros_value(value)}']
    recorder.main(args=['vlm-nav-record'] + ros_args)
    return 0


def main(argv=None) -> int:
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

    demo = sub.add_parser('demo', help='explore, then search for a target in the simulator')
    from vlm_nav.cli import demo as demo_module
    demo_module.add_arguments(demo)

    record = sub.add_parser('record', help='record topics to a rosbag2 (like ros2 bag record)')
    record.add_argument('--output', '-o', default='', help='bag folder to create')
    record.add_argument('--storage', choices=('mcap', 'sqlite3'), default='mcap')
    record.add_argument('--topics', nargs='+', default=None,
                        help='default: camera, descriptions, navigator state, cmd_vel')
    record.add_argument('--duration', type=float, default=0.0,
                        help='seconds from the first recorded message; 0 = until Ctrl-C')
    record.add_argument('--params-file', default=None)

    evaluate = sub.add_parser('evaluate-bag', help="score a model on a bag's ground truth")
    from vlm_nav.cli import evaluate_bag
    evaluate_bag.add_arguments(evaluate)

    bench = sub.add_parser('bench', help='benchmarks').add_subparsers(dest='bench',
                                                                      required=True)
    from vlm_nav.bench import model as bench_model
    from vlm_nav.bench import nav as bench_nav
    from vlm_nav.bench import served as bench_served
    benches = {
        'nav': (bench_nav, 'closed-loop search on held-out layouts: original vs scored vs '
                'oracle perception'),
        'served': (bench_served, 'N robots sharing one model server: latency per robot and '
                   'throughput as N grows'),
        'model': (bench_model, 'decision latency and memory per model and precision: '
                  'scoring vs generate-then-parse vs bare prefill'),
    }
    for name, (module, text) in benches.items():
        module.add_arguments(bench.add_parser(name, help=text))

    doctor = sub.add_parser('doctor', help='check this machine and a model: what is wrong '
                            'and how to fix it')
    from vlm_nav.cli import doctor as doctor_module
    doctor_module.add_arguments(doctor)

    args = parser.parse_args(argv)
    if args.command == 'bringup':
        args.params_file = args.params_file or default_params_file()
        return _bringup(args)
    if args.command == 'demo':
        return demo_module.run(args)
    if args.command == 'record':
        return _record(args)
    if args.command == 'evaluate-bag':
        return evaluate_bag.run(args)
    if args.command == 'doctor':
        return doctor_module.run(args)
    if args.command == 'bench':
        return benches[args.bench][0].run(args)
    parser.error(f'unknown command {args.command}')
    return 2


if __name__ == '__main__':
    sys.exit(main())
