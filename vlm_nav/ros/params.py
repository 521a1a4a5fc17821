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

"""Declaring parameters with descriptors in one line each (ros2/demos style)."""

from typing import Any, Optional, Sequence

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.node import Node


def declare(node: Node, name: str, default: Any, description: str,
            low: Optional[float] = None, high: Optional[float] = None,
            choices: Optional[Sequence[str]] = None, read_only: bool = False) -> Any:
    """Declare a typed parameter with its description and range; return its value."""
    descriptor = ParameterDescriptor(description=description, read_only=read_only)
    if low is not None and high is not None:
        if isinstance(default, bool):
            pass
        elif isinstance(default, int):
            descriptor.integer_range = [IntegerRange(from_value=int(low), to_value=int(high))]
        elif isinstance(default, float):
            descriptor.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high))]
    if choices:
        descriptor.additional_constraints = 'one of: ' + ', '.join(choices)
    return node.declare_parameter(name, default, descriptor).value


def check_choices(params, allowed: dict) -> SetParametersResult:
    """Validate (on_set) string parameters that take one of a few values."""
    for param in params:
        if param.name in allowed and param.value not in allowed[param.name]:
            return SetParametersResult(
                successful=False,
                reason=f'{param.name} must be one of {sorted(allowed[param.name])}, '
                       f'got {param.value!r}')
    return SetParametersResult(successful=True)
