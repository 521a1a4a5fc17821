"""`vlm-nav`: bringup profiles, the simulator demo, training and evaluation on the pip path."""

import argparse
import sys
import time

from vlm_nav.bringup import Stack
from vlm_nav.stack import default_params_file, PROFILE_ARGUMENTS, profile_nodes


def _bringup(args) -> int:
    if args.profile == 'replay' and not args.bag:
        print('replay needs --bag PATH (a rosbag2 folder)')
        return 2
    specs = profile_nodes(args.profile, model=args.model, target=args.target,
                          seed=args.seed, bag=args.bag)
    with Stack(specs, args.params_file) as stack:
        print(f'[vlm-nav] {args.profile}: started ' +
              ', '.join(s.name for s in specs) + ' (Ctrl-C stops)')
        try:
            while not stack.dead():
                time.sleep(0.5)
            print(f'[vlm-nav] node(s) exited: {", ".join(stack.dead())}; stopping')
            return 1
        except KeyboardInterrupt:
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

    demo = sub.add_parser('demo', help='explore, then search for a target in the simulator')
    from vlm_nav import demo as demo_module
    demo_module.add_arguments(demo)

    args = parser.parse_args(argv)
    if args.command == 'bringup':
        args.params_file = args.params_file or default_params_file()
        return _bringup(args)
    if args.command == 'demo':
        return demo_module.run(args)
    parser.error(f'unknown command {args.command}')
    return 2


if __name__ == '__main__':
    sys.exit(main())
