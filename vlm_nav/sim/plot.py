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

"""Top-down plots of a layout and a robot trajectory (matplotlib, Agg backend)."""

import math
from typing import Optional, Sequence

from vlm_nav.sim.layout import Layout


def top_down_figure(layout: Layout, trajectory: Sequence[Sequence[float]] = (),
                    target: Optional[str] = None, title: Optional[str] = None,
                    robot_radius: float = 0.2):
    """
    Draw walls, objects (in their colours), the trajectory, its start and stop.

    :param trajectory: (x, y) or (x, y, yaw) points in world coordinates.
    :param target: label of the object to circle, if any.
    :return: a matplotlib Figure (close it with matplotlib.pyplot.close).
    """
    import matplotlib
    matplotlib.use('Agg')   # headless; a no-op if a backend is already in use
    from matplotlib.figure import Figure
    from matplotlib.patches import Circle, Rectangle

    fig = Figure(figsize=(5, 5 * layout.depth / layout.width + 0.4))
    ax = fig.add_subplot(1, 1, 1)
    ax.add_patch(Rectangle((-layout.width / 2, -layout.depth / 2), layout.width,
                           layout.depth, color=layout.floor_color, alpha=0.35, zorder=0))
    for w in layout.walls:
        ax.add_patch(Rectangle((w.cx - w.hx, w.cy - w.hy), 2 * w.hx, 2 * w.hy,
                               color='0.25', zorder=2))
    for o in layout.objects:
        if o.panel is not None:
            r = o.panel
            ax.add_patch(Rectangle((r.cx - r.hx, r.cy - r.hy), 2 * r.hx, 2 * r.hy,
                                   color=o.color, zorder=3))
        else:
            ax.add_patch(Circle((o.x, o.y), o.radius, color=o.color, zorder=3))
        ax.annotate(o.label, (o.x, o.y), fontsize=7, ha='center', va='bottom',
                    xytext=(0, 6), textcoords='offset points', zorder=6)
        if target is not None and o.label == target:
            ax.add_patch(Circle((o.x, o.y), o.radius + 0.15, fill=False, ec='magenta',
                                lw=1.5, zorder=4))
    pts = [tuple(q) for q in trajectory]
    if pts:
        xs, ys = [q[0] for q in pts], [q[1] for q in pts]
        ax.plot(xs, ys, '-', color='black', lw=1.2, zorder=5)
        ax.add_patch(Circle(pts[0][:2], robot_radius, fill=False, ec='tab:green', lw=1.5,
                            zorder=5, label='start'))
        ax.add_patch(Circle(pts[-1][:2], robot_radius, fill=False, ec='tab:red', lw=1.5,
                            zorder=5, label='stop'))
        if len(pts[-1]) > 2:
            yaw = pts[-1][2]
            ax.arrow(pts[-1][0], pts[-1][1], 0.35 * math.cos(yaw), 0.35 * math.sin(yaw),
                     width=0.02, color='tab:red', zorder=5)
        ax.legend(loc='upper right', fontsize=7)
    m = 0.3
    ax.set_xlim(-layout.width / 2 - m, layout.width / 2 + m)
    ax.set_ylim(-layout.depth / 2 - m, layout.depth / 2 + m)
    ax.set_aspect('equal')
    ax.set_xlabel('x [m]')
    ax.set_ylabel('y [m]')
    ax.set_title(title if title is not None else f'layout seed {layout.seed}', fontsize=9)
    fig.tight_layout()
    return fig


def save_top_down(path_png: str, layout: Layout,
                  trajectory: Sequence[Sequence[float]] = (),
                  target: Optional[str] = None, title: Optional[str] = None,
                  robot_radius: float = 0.2, dpi: int = 110) -> str:
    """Write top_down_figure(...) to a PNG; returns the path."""
    fig = top_down_figure(layout, trajectory, target=target, title=title,
                          robot_radius=robot_radius)
    fig.savefig(path_png, dpi=dpi)
    return path_png
