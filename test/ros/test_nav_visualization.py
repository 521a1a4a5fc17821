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
What people see: the navigator's debug image and markers, over DDS and in the recorded bag.

The annotated debug image and the markers of what was seen where arrive with sane content,
and the recorder writes them into the MCAP bag a user opens in Foxglove (real sim_node,
oracle_node, navigator_node and recorder processes; the oracle stands in for the model so
the test needs no model load).
"""

import math
import signal

from conftest import running_stack
from diagnostic_msgs.msg import DiagnosticArray
from nav_msgs.msg import OccupancyGrid
import numpy as np
import pytest
from rclpy.qos import qos_profile_sensor_data
from rosbags.highlevel import AnyReader
from sensor_msgs.msg import Image
from visualization_msgs.msg import Marker, MarkerArray

from vlm_nav.bringup.profiles import NodeSpec

pytestmark = [pytest.mark.ros]

SEED = 3_000_000                  # held-out layout; blue ball at (2.21, -3.46)
START = [0.43, -1.22, -0.9]       # facing the ball past the plant


def test_debug_image_and_markers_arrive_with_sane_content(probe, tmp_path):
    probe.record(DiagnosticArray, '/diagnostics')
    probe.record(Image, 'vlm_nav/debug_image', qos_profile_sensor_data)
    probe.record(Image, 'camera/image_raw', qos_profile_sensor_data)
    probe.record(MarkerArray, 'vlm_nav/markers')
    probe.record(OccupancyGrid, 'vlm_nav/scan_map')
    specs = [NodeSpec('sim_node', 'sim_node', {'seed': SEED, 'start_pose': START}),
             NodeSpec('oracle_node', 'oracle_node'),
             NodeSpec('navigator_node', 'navigator_node', {'target': 'blue ball'}),
             NodeSpec('recorder', 'recorder', {'output': str(tmp_path / 'bag')})]

    def target_seen():
        arrays = probe.messages('vlm_nav/markers')
        return any(m.ns == 'target seen' and m.type == Marker.TEXT_VIEW_FACING
                   for array in arrays for m in array.markers) and \
            any(m.ns == 'path' for m in arrays[-1].markers)      # it has moved

    with running_stack(specs, tmp_path) as running:
        assert probe.wait_for(lambda: len(probe.messages('vlm_nav/debug_image')) >= 3 and
                              target_seen() and probe.messages('camera/image_raw'), 90.0), \
            (len(probe.messages('vlm_nav/debug_image')),
             len(probe.messages('vlm_nav/markers')))
        # the recorder subscribed about when the probe did, but the array that first had a path
        # may still be in flight to it: a few more arrays arrive before the stack stops, and
        # the recorder's own counts (its diagnostics) show it has written each topic
        seen = len(probe.messages('vlm_nav/markers'))
        assert probe.wait_for(lambda: len(probe.messages('vlm_nav/markers')) >= seen + 3, 20.0)

        def recorded_each():
            counts = probe.diagnostics('recorder') or {}
            return all(int(counts.get(f'count /{topic}', 0)) > 0 for topic in
                       ('vlm_nav/debug_image', 'vlm_nav/markers', 'camera/image_raw', 'odom'))
        assert probe.wait_for(recorded_each, 45.0), probe.diagnostics('recorder')
        # The recorder first, on its own, so its own exit status says it closed the bag
        # cleanly on SIGINT (Stack.stop would go on to SIGTERM/SIGKILL a slow one).
        recorder = running.processes['recorder']
        recorder.send_signal(signal.SIGINT)
        assert recorder.wait(20.0) == 0
    picture = probe.messages('vlm_nav/debug_image')[-1]
    frame = probe.messages('camera/image_raw')[-1]
    assert picture.encoding == 'rgb8' and picture.width == 384 and picture.height > 384
    rgb = np.frombuffer(bytes(picture.data), np.uint8).reshape(picture.height,
                                                               picture.width, 3)
    assert rgb[:384].std() > 10.0                      # the camera frame is in it
    assert rgb[384:].max() > 200                       # and the text panel has writing
    assert picture.header.frame_id == frame.header.frame_id

    arrays = probe.messages('vlm_nav/markers')
    latest = arrays[-1].markers
    assert latest[0].action == Marker.DELETEALL        # each array replaces the last
    by_ns = {}
    for m in latest[1:]:
        assert m.header.frame_id == 'odom'
        by_ns.setdefault(m.ns, []).append(m)
    path = by_ns['path'][0]
    assert path.type == Marker.LINE_STRIP and len(path.points) >= 2
    assert math.dist((path.points[0].x, path.points[0].y), START[:2]) < 0.35
    assert by_ns['headings looked at']                 # rays from the current spot
    label = [m for a in arrays for m in a.markers
             if m.ns == 'target seen' and m.type == Marker.TEXT_VIEW_FACING][-1]
    assert label.text.startswith('blue ball (seen')
    # with the simulator's lidar: what the camera has looked at of what the scan shows
    assert any(m.ns == 'looked at' and len(m.points) > 10 for a in arrays for m in a.markers)
    grids = probe.messages('vlm_nav/scan_map')
    assert grids, 'no map of the scan'
    grid = grids[-1]
    cells = np.asarray(grid.data, dtype=np.int8).reshape(grid.info.height, grid.info.width)
    assert grid.header.frame_id == 'odom' and (cells == 100).sum() > 50 and \
        (cells == 0).sum() > 500
    # the start lies in free space on it (row = y, column = x)
    col = int((START[0] - grid.info.origin.position.x) / grid.info.resolution)
    row = int((START[1] - grid.info.origin.position.y) / grid.info.resolution)
    assert cells[row, col] == 0
    # where the target was seen: a rough estimate (near 0.8 m / far 2 m along the bearing)
    assert math.dist((label.pose.position.x, label.pose.position.y), (2.21, -3.46)) < 2.0

    counts, kinds = {}, set()
    with AnyReader([tmp_path / 'bag']) as reader:
        for connection, _, raw in reader.messages():
            counts[connection.topic] = counts.get(connection.topic, 0) + 1
            if connection.topic == '/vlm_nav/markers':
                # the stored definition reads the bytes back (what Foxglove does)
                kinds |= {m.ns for m in reader.deserialize(raw, connection.msgtype).markers}
    for topic in ('/vlm_nav/debug_image', '/vlm_nav/markers', '/odom', '/camera/image_raw'):
        assert counts.get(topic, 0) > 0, (topic, counts)
    assert {'path', 'headings looked at', 'target seen'} <= kinds, kinds
