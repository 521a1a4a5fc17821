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
Scene describer: at a set rate, asks the VLM node to describe the newest frame.

Publishes scene_description (std_msgs/String, the text alone) and the
structured scene_description/structured (SceneDescription). One request in flight
at a time; a slow model lowers the rate instead of queueing work.
"""

import time

import rclpy
from rclpy.node import Node
from std_msgs.msg import String

from vlm_nav.ros.diagnostics import DiagnosticsPublisher, OK, WARN
from vlm_nav.ros.params import declare
from vlm_nav.ros.session import ros_session
from vlm_nav_interfaces.msg import SceneDescription
from vlm_nav_interfaces.srv import Describe


class SceneDescriberNode(Node):

    def __init__(self, **kwargs):
        super().__init__('scene_describer_node', **kwargs)
        declare(self, 'rate_hz', 1.0, 'descriptions per second (at most)', 0.01, 50.0)
        declare(self, 'max_new_tokens', 48, 'token budget of a description', 1, 512)
        declare(self, 'request_timeout_s', 10.0, 'give up on a Describe call after this',
                0.1, 600.0)
        self.add_post_set_parameters_callback(self._on_parameters_set)
        self._text_pub = self.create_publisher(String, 'scene_description', 10)
        self._scene_pub = self.create_publisher(SceneDescription,
                                                'scene_description/structured', 10)
        self._client = self.create_client(Describe, 'vlm_nav/describe')
        self._pending = None
        self._pending_since = 0.0
        self._counts = {'published': 0, 'failed': 0, 'last_error': ''}
        self._diagnostics = DiagnosticsPublisher(self)
        self.create_timer(1.0, self._publish_diagnostics)
        self._timer = self.create_timer(1.0 / self.get_parameter('rate_hz').value, self._tick)

    def _on_parameters_set(self, params) -> None:
        if any(p.name == 'rate_hz' for p in params):
            self.destroy_timer(self._timer)
            self._timer = self.create_timer(1.0 / self.get_parameter('rate_hz').value,
                                            self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        if self._pending is not None:
            if now - self._pending_since < self.get_parameter('request_timeout_s').value:
                return
            self._fail('describe call timed out')
        if not self._client.service_is_ready():
            return
        request = Describe.Request(max_new_tokens=self.get_parameter('max_new_tokens').value)
        future = self._client.call_async(request)
        self._pending, self._pending_since = future, now
        future.add_done_callback(self._on_response)

    def _fail(self, why: str) -> None:
        self._pending = None
        self._counts['failed'] += 1
        self._counts['last_error'] = why
        self.get_logger().warning(f'no description: {why}', throttle_duration_sec=5.0)

    def _on_response(self, future) -> None:
        if future is not self._pending:
            return
        try:
            response = future.result()
        except Exception as error:  # noqa: B902 - any failed call is a missed description
            self._fail(str(error))
            return
        if not response.success:
            self._fail(response.message)
            return
        self._pending = None
        self._text_pub.publish(String(data=response.description.text))
        self._scene_pub.publish(response.description)
        self._counts['published'] += 1

    def _publish_diagnostics(self) -> None:
        level = WARN if self._counts['last_error'] and not self._counts['published'] else OK
        self._diagnostics.publish(level, 'describing', self._counts)


def main(args=None):
    with ros_session(args=args):
        rclpy.spin(SceneDescriberNode())


if __name__ == '__main__':
    main()
