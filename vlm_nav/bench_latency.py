"""Frame-to-Twist latency through the real nodes (part of `vlm-nav bench model --nodes`).

The sim profile (sim_node at real time, vlm_node with the embedded model, the scene
describer, navigator_node searching) runs as separate processes over DDS, once per
navigator policy. navigator_node publishes, with every Twist, a NavigatorState that
carries the stamp of the camera frame its newest observation was made on; the first
state after a new frame stamp gives that frame's latency: state.stamp - frame stamp,
both on the wall clock (sim_node stamps a frame when it renders it).
"""

import os
import time
from typing import Dict, Iterable

import numpy as np

from vlm_nav.bringup import Stack
from vlm_nav.stack import default_params_file, profile_nodes

SEED, TARGET = 5, 'red ball'      # the demo's layout: the target is there to be found


def _collect(seconds: float, policy: str, log) -> Dict:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.time import Time
    from vlm_nav_interfaces.msg import NavigatorState

    specs = profile_nodes('sim', model='', target=TARGET, seed=SEED)
    for spec in specs:
        if spec.name == 'navigator_node':
            spec.parameters.update(policy=policy, mode='search')
    env = {'ROS_DOMAIN_ID': str(os.getpid() % 150 + 60 + (policy == 'original'))}
    os.environ.update(env)
    first_seen: Dict[int, float] = {}
    with Stack(specs, default_params_file(), env=env, echo=False):
        rclpy.init()
        node = rclpy.create_node('frame_to_twist_probe')

        def on_state(msg: NavigatorState) -> None:
            frame = Time.from_msg(msg.frame_stamp).nanoseconds
            if frame and frame not in first_seen:
                first_seen[frame] = (Time.from_msg(msg.stamp).nanoseconds - frame) * 1e-9

        node.create_subscription(NavigatorState, 'vlm_nav/navigator_state', on_state, 50)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        try:
            deadline = time.monotonic() + 120.0        # model load and discovery
            while not first_seen and time.monotonic() < deadline:
                executor.spin_once(timeout_sec=0.1)
            first_seen.clear()                         # warm-up over: measure from here
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.1)
        finally:
            executor.shutdown()
            node.destroy_node()
            rclpy.shutdown()
    lat = np.array(list(first_seen.values())) * 1e3
    if not len(lat):
        return {'error': 'no decisions observed'}
    result = {'p50_ms': round(float(np.percentile(lat, 50)), 1),
              'p95_ms': round(float(np.percentile(lat, 95)), 1),
              'mean_ms': round(float(lat.mean()), 1), 'decisions': int(len(lat)),
              'decisions_per_s': round(len(lat) / seconds, 2), 'camera_hz': 10.0}
    log(f'[bench] frame-to-Twist, {policy} policy: p50 {result["p50_ms"]:.1f} ms, '
        f'p95 {result["p95_ms"]:.1f} ms, {result["decisions_per_s"]:.1f} decisions/s')
    return result


def frame_to_twist(seconds: float, policies: Iterable[str] = ('scored', 'original'),
                   log=print) -> Dict:
    out = {}
    for policy in policies:
        out[policy] = _collect(seconds, policy, log)
    s, o = out.get('scored', {}), out.get('original', {})
    if 'p50_ms' in s and 'p50_ms' in o:
        out['original_over_scored_p50'] = round(o['p50_ms'] / s['p50_ms'], 2)
    return out
