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

"""Velocity and acceleration limits: every published Twist goes through here."""

from dataclasses import dataclass
import math
from typing import Tuple


def _finite(value: float) -> float:
    return value if math.isfinite(value) else 0.0


def _clamp(value: float, bound: float) -> float:
    return max(-bound, min(bound, value))


@dataclass
class VelocityLimiter:
    max_linear: float = 0.3         # m/s
    max_angular: float = 1.0        # rad/s
    max_linear_accel: float = 0.5   # m/s^2
    max_angular_accel: float = 2.0  # rad/s^2
    linear: float = 0.0             # last output
    angular: float = 0.0

    def limit(self, linear: float, angular: float, dt: float) -> Tuple[float, float]:
        """
        Clamp to speed limits, then to what the accelerations allow since the last call.

        Non-finite inputs become 0; the output is always finite and within limits.
        """
        dt = max(0.0, _finite(dt))
        linear = _clamp(_finite(linear), self.max_linear)
        angular = _clamp(_finite(angular), self.max_angular)
        step_v, step_w = self.max_linear_accel * dt, self.max_angular_accel * dt
        self.linear = _clamp(self.linear + _clamp(linear - self.linear, step_v), self.max_linear)
        self.angular = _clamp(self.angular + _clamp(angular - self.angular, step_w),
                              self.max_angular)
        return self.linear, self.angular

    def stop(self) -> Tuple[float, float]:
        """Immediate zero (safety stop bypasses the acceleration limit)."""
        self.linear = self.angular = 0.0
        return 0.0, 0.0
