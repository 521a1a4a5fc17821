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
Security monitor: watches scenarios on the newest camera frame and raises alerts.

Every check_period_s (or every check_every_n_frames frames) the newest frame is sent
with each scenario's question and choices to the vlm_node's Ask service, one request
at a time, so one model process serves the whole stack and the frame scored is the
frame saved. The probabilities go through the pure policy (vlm_nav/monitor/alerts.py:
threshold, debounce, event end, cooldown); an alert is published on vlm_nav/alerts,
appended to <alert_dir>/alerts.jsonl and its frame saved under <alert_dir>/frames.

The image callback only keeps the newest message; checks start from a timer and
proceed in service-response callbacks; file writing runs on its own thread.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
import json
import os
import sys
import threading
import time
from typing import Dict, List, Optional

import cv2
import rclpy
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from vlm_nav.bringup.profiles import default_params_file
from vlm_nav.monitor.alerts import AlertPolicy, Decision
from vlm_nav.monitor.scenarios import load_scenarios, Scenario, ScenarioError, select
from vlm_nav.ros.diagnostics import DiagnosticsPublisher, ERROR, OK, WARN
from vlm_nav.ros.image import image_to_rgb, ImageError
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session
from vlm_nav_interfaces.msg import Alert
from vlm_nav_interfaces.srv import Ask

LOG_NAME = 'alerts.jsonl'
DEFAULT_ALERT_DIR = 'vlm_nav_alerts'
POLL_PERIOD_S = 0.05


class MonitorConfigError(RuntimeError):
    """The monitor can't start as configured; the message says why."""


class _Check:
    """One check in progress: a frame and the scenarios still to ask about it."""

    def __init__(self, frame: Image, frame_time: float, scenarios: List[Scenario]):
        self.frame = frame
        self.frame_time = frame_time
        self.todo = list(scenarios)
        self.started = time.monotonic()
        self.future = None
        self.asked_at = 0.0
        self.failures = 0


class MonitorNode(Node):

    def __init__(self, **kwargs):
        super().__init__('monitor_node', **kwargs)
        scenario_file = declare(self, 'scenario_file', '', 'scenario YAML; "" = the package\'s '
                                'config/monitor_scenarios.yaml', read_only=True)
        chosen = declare(self, 'scenarios', '', 'comma-separated scenario ids to watch; '
                         '"" = every scenario enabled in the file', read_only=True)
        alert_dir = declare(self, 'alert_dir', '', 'folder of alerts.jsonl and the saved '
                            'frames (created if missing); "" = ./vlm_nav_alerts',
                            read_only=True)
        self._save_frames = declare(self, 'save_frames', True, 'save the frame of each alert',
                                    read_only=True)
        declare(self, 'check_period_s', 2.0, 'seconds between checks (when '
                'check_every_n_frames is 0)', 0.05, 3600.0)
        declare(self, 'check_every_n_frames', 0, 'check every N-th new frame instead of by '
                'time; 0 = by check_period_s', 0, 100000)
        declare(self, 'max_frame_age_s', 2.0, 'a newest frame older than this (by arrival) '
                'is not checked', 0.05, 3600.0)
        declare(self, 'request_timeout_s', 10.0, 'give up on an Ask call (and that check) '
                'after this', 0.1, 600.0)
        declare(self, 'diagnostics_period_s', 1.0, 'diagnostics publishing period', 0.1, 60.0)

        try:
            path = scenario_file.strip() or default_params_file('monitor_scenarios.yaml')
            ids = [i.strip() for i in chosen.split(',') if i.strip()]
            self._scenarios = select(load_scenarios(path), ids)
        except (ScenarioError, FileNotFoundError) as error:
            self.get_logger().fatal(str(error))
            raise MonitorConfigError(str(error)) from None
        self._alert_dir = os.path.abspath(os.path.expanduser(alert_dir.strip() or
                                                             DEFAULT_ALERT_DIR))
        self._log_path = os.path.join(self._alert_dir, LOG_NAME)
        try:
            os.makedirs(os.path.join(self._alert_dir, 'frames'), exist_ok=True)
            with open(self._log_path, 'a', encoding='utf-8'):
                pass
        except OSError as error:
            message = f'alert_dir {self._alert_dir!r} is not writable: {error}'
            self.get_logger().fatal(message)
            raise MonitorConfigError(message) from None

        self._policy = AlertPolicy(self._scenarios)
        self._frame: Optional[Image] = None
        self._frame_received = 0.0
        self._frames = 0                      # frames received so far
        self._checked_frame = 0               # self._frames when the last check started
        self._last_due = time.monotonic()
        self._check: Optional[_Check] = None
        self._busy_counted = False
        self._confidence: Dict[str, float] = {}
        self._lock = threading.Lock()         # counters shared with the writer thread
        self._stats = {
            'frames_received': 0, 'checks_started': 0, 'checks_done': 0, 'checks_failed': 0,
            'skipped_busy': 0, 'skipped_no_frame': 0, 'skipped_stale_frame': 0,
            'skipped_no_new_frame': 0, 'skipped_vlm_unavailable': 0, 'asks_failed': 0,
            'alerts': 0, 'held_by_cooldown': 0, 'events_ended': 0, 'write_errors': 0,
            'last_check_s': 0.0, 'last_check_ok': False, 'last_error': '',
            'last_write_error': ''}
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix='alert_writer')

        self._alert_pub = self.create_publisher(
            Alert, 'vlm_nav/alerts', QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))
        self.create_subscription(Image, 'camera/image_raw', self._on_image,
                                 qos_profile_sensor_data)
        self._ask = self.create_client(Ask, 'vlm_nav/ask')
        self._diagnostics = DiagnosticsPublisher(self)
        self._diag_timer = self.create_timer(
            self.get_parameter('diagnostics_period_s').value, self._publish_diagnostics)
        self.create_timer(POLL_PERIOD_S, self._poll)
        self.get_logger().info(
            f'watching {[s.id for s in self._scenarios]} from {path}; alerts to '
            f'{self._log_path}')

    # ---- frames: keep the newest, nothing else -------------------------------------------
    def _on_image(self, msg: Image) -> None:
        self._frame = msg
        self._frame_received = time.monotonic()
        self._frames += 1

    # ---- checks ------------------------------------------------------------------------------
    def _count(self, key: str, error: str = '') -> None:
        with self._lock:
            self._stats[key] += 1
            if error:
                self._stats['last_error'] = error

    def _due(self, now: float) -> bool:
        every_n = self.get_parameter('check_every_n_frames').value
        if every_n > 0:
            return self._frames - self._checked_frame >= every_n
        return now - self._last_due >= self.get_parameter('check_period_s').value

    def _poll(self) -> None:
        now = time.monotonic()
        check = self._check
        if (check is not None and check.future is not None
                and now - check.asked_at > self.get_parameter('request_timeout_s').value):
            self._ask.remove_pending_request(check.future)
            self._finish(f'Ask timed out after {now - check.asked_at:.1f} s', failed=True)
        if not self._due(now):
            return
        if self._check is not None:
            # Due while the previous check runs: counted once; the newest frame is
            # checked as soon as that one finishes.
            if not self._busy_counted:
                self._busy_counted = True
                self._count('skipped_busy')
            return
        self._busy_counted = False
        self._last_due = now
        frames = self._frames
        if self._frame is None:
            self._count('skipped_no_frame')
            return
        if frames == self._checked_frame:
            self._count('skipped_no_new_frame')
            return
        age = now - self._frame_received
        if age > self.get_parameter('max_frame_age_s').value:
            self._count('skipped_stale_frame', f'newest frame is {age:.1f} s old')
            return
        if not self._ask.service_is_ready():
            self._count('skipped_vlm_unavailable', 'vlm_nav/ask is not available')
            return
        self._checked_frame = frames
        frame = self._frame
        stamp = frame.header.stamp
        # Frame time drives debounce and cooldown; an unstamped source uses our clock.
        frame_time = (stamp.sec + stamp.nanosec * 1e-9 if stamp.sec or stamp.nanosec
                      else self.get_clock().now().nanoseconds * 1e-9)
        self._check = _Check(frame, frame_time, self._scenarios)
        self._count('checks_started')
        self._ask_next()

    def _ask_next(self) -> None:
        check = self._check
        if not check.todo:
            self._finish()
            return
        scenario = check.todo[0]
        request = Ask.Request(question=scenario.question, choices=list(scenario.choices),
                              image=check.frame)
        check.asked_at = time.monotonic()
        check.future = self._ask.call_async(request)
        check.future.add_done_callback(self._on_answer)

    def _on_answer(self, future) -> None:
        check = self._check
        if check is None or future is not check.future:
            return                                   # answer to an abandoned check
        scenario = check.todo.pop(0)
        try:
            response = future.result()
        except Exception as error:  # noqa: B902 - a failed call fails this check only
            self._finish(f'Ask failed: {error}', failed=True)
            return
        if not response.success:
            check.failures += 1
            self._count('asks_failed', f'{scenario.id}: {response.message}')
            self.get_logger().warning(f'{scenario.id}: no answer: {response.message}',
                                      throttle_duration_sec=5.0)
        else:
            try:
                confidence = scenario.confidence(response.scores)
            except ValueError as error:
                check.failures += 1
                self._count('asks_failed', f'{scenario.id}: {error}')
            else:
                self._decide(scenario, confidence, response, check)
        self._ask_next()

    def _finish(self, error: str = '', failed: bool = False) -> None:
        check, self._check = self._check, None
        if failed:
            self._count('checks_failed', error)
            self.get_logger().warning(f'check failed: {error}', throttle_duration_sec=5.0)
        else:
            self._count('checks_done')
        with self._lock:
            self._stats['last_check_s'] = round(time.monotonic() - check.started, 3)
            self._stats['last_check_ok'] = not failed and check.failures == 0

    def _decide(self, scenario: Scenario, confidence: float, response: Ask.Response,
                check: _Check) -> None:
        self._confidence[scenario.id] = confidence
        decision = self._policy.update(scenario.id, confidence, check.frame_time)
        if decision.event_ended:
            self._count('events_ended')
            self.get_logger().info(f'{scenario.id}: event ended (P={confidence:.2f})')
        if decision.held_by_cooldown:
            self._count('held_by_cooldown')
        if decision.alert:
            self._count('alerts')
            self._writer.submit(self._raise_alert, scenario, decision, response, check.frame)

    # ---- alerts (writer thread) -------------------------------------------------------------
    def _raise_alert(self, scenario: Scenario, decision: Decision, response: Ask.Response,
                     frame: Image) -> None:
        wall = datetime.now(timezone.utc)
        alert = Alert(scenario_id=scenario.id, severity=scenario.severity,
                      description=scenario.description, question=scenario.question,
                      choices=list(scenario.choices),
                      scores=[float(p) for p in response.scores],
                      alarm_choices=list(scenario.alarm), confidence=decision.confidence,
                      threshold=scenario.threshold,
                      consecutive_hits=decision.consecutive_hits,
                      model_name=response.model_name)
        alert.header = frame.header
        record = {
            'time': wall.isoformat(), 'scenario': scenario.id, 'severity': scenario.severity,
            'description': scenario.description, 'question': scenario.question,
            'scores': dict(zip(scenario.choices, alert.scores)),
            'alarm': list(scenario.alarm), 'confidence': round(decision.confidence, 4),
            'threshold': scenario.threshold, 'consecutive_hits': decision.consecutive_hits,
            'frame_stamp': frame.header.stamp.sec + frame.header.stamp.nanosec * 1e-9,
            'frame_id': frame.header.frame_id, 'model': response.model_name, 'frame': ''}
        if self._save_frames:
            name = f'{wall:%Y%m%d-%H%M%S-%f}_{scenario.id}.png'
            try:
                self._save_frame(frame, os.path.join(self._alert_dir, 'frames', name))
                alert.frame_path = os.path.join(self._alert_dir, 'frames', name)
                record['frame'] = os.path.join('frames', name)   # relative: folder moves
            except (ImageError, OSError) as error:
                record['frame_error'] = str(error)
                self._write_failed(f'frame not saved: {error}')
        try:
            with open(self._log_path, 'a', encoding='utf-8') as log:
                log.write(json.dumps(record) + '\n')
                log.flush()
                os.fsync(log.fileno())
        except OSError as error:
            self._write_failed(f'{self._log_path}: {error}')
        else:
            if 'frame_error' not in record:
                with self._lock:
                    self._stats['last_write_error'] = ''    # writing works (again)
        self._alert_pub.publish(alert)
        self.get_logger().warning(
            f'ALERT [{scenario.severity}] {scenario.id}: {scenario.description} '
            f'(P={decision.confidence:.2f} >= {scenario.threshold}, frame '
            f'{record["frame_stamp"]:.3f})')

    @staticmethod
    def _save_frame(frame: Image, path: str) -> None:
        rgb = image_to_rgb(frame)
        if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
            raise OSError(f'OpenCV could not write {path}')

    def _write_failed(self, why: str) -> None:
        with self._lock:
            self._stats['write_errors'] += 1
            self._stats['last_write_error'] = why
        self.get_logger().error(f'alert log: {why}', throttle_duration_sec=5.0)

    # ---- health ----------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        with self._lock:
            values = dict(self._stats)
        values['frames_received'] = self._frames
        values['scenarios'] = ','.join(s.id for s in self._scenarios)
        values['in_event'] = ','.join(s.id for s in self._scenarios
                                      if self._policy.in_event(s.id))
        values['alert_log'] = self._log_path
        for scenario_id, confidence in self._confidence.items():
            values[f'p_{scenario_id}'] = f'{confidence:.3f}'
        if values['last_write_error']:
            level, message = ERROR, f'alerts not fully written: {values["last_write_error"]}'
        elif self._frame is None:
            level, message = WARN, 'no camera frames yet'
        elif not self._ask.service_is_ready():
            level, message = WARN, 'vlm_nav/ask is not available'
        elif values['checks_done'] == 0:
            level, message = WARN, 'no check completed yet'
        elif not values['last_check_ok']:
            level, message = WARN, f'last check incomplete: {values["last_error"]}'
        else:
            level, message = OK, f'watching {len(self._scenarios)} scenario(s)'
        self._diagnostics.publish(level, message, values)

    def destroy_node(self):
        self._writer.shutdown(wait=True)        # alerts already decided are written
        return super().destroy_node()


def main(args=None) -> int:
    with ros_session(args=args):
        try:
            node = MonitorNode()
        except MonitorConfigError:
            return 1                         # the reason was logged as FATAL
        try:
            rclpy.spin(node)
        finally:
            node.destroy_node()
    return 0


if __name__ == '__main__':
    sys.exit(main())
