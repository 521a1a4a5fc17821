#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment for the pip path: ROS 2 client wheels of
# one distro, vlm_nav_interfaces built with that distro's rosidl, torch (CPU), transformers,
# and vlm_nav itself (editable). Safe to run again: a finished setup is detected and reused.
#   VLM_NAV_ROS_DISTRO  kilted (default; requirements.txt, venv .venv) or
#                       jazzy (requirements-jazzy.txt, venv .venv-jazzy)
#   VLM_NAV_VENV        the venv's path instead of the distro's default
# `setup_env.sh --print-venv` prints the venv's path and sets up nothing.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
distro="${VLM_NAV_ROS_DISTRO:-kilted}"
case "$distro" in
  kilted) requirements="$repo/requirements.txt"; default_venv="$repo/.venv" ;;
  jazzy) requirements="$repo/requirements-jazzy.txt"; default_venv="$repo/.venv-jazzy" ;;
  *) printf '[setup] VLM_NAV_ROS_DISTRO=%s: the pip path supports kilted (default) and jazzy\n' \
       "$distro" >&2; exit 2 ;;
esac
venv="${VLM_NAV_VENV:-$default_venv}"
if [ "${1:-}" = --print-venv ]; then
  echo "$venv"
  exit 0
fi
stamp="$venv/.vlm_nav_setup_done"
# Re-run setup when any input of it changed.
want="$( (echo "$distro"; cat "$requirements" "$repo/requirements-robot.txt" "$repo/requirements-dev.txt" \
        "$repo/scripts/setup_env.sh" "$repo/setup.py" \
        "$repo"/vlm_nav_interfaces/package.xml "$repo"/vlm_nav_interfaces/CMakeLists.txt \
        "$repo"/vlm_nav_interfaces/msg/* "$repo"/vlm_nav_interfaces/srv/* \
        "$repo"/vlm_nav_interfaces/action/*) | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi

log() { printf '[setup] %s\n' "$*" >&2; }
need() { command -v "$1" >/dev/null 2>&1; }

if ! need cmake || ! need g++ || ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  log 'installing system build tools (cmake, g++, python3-venv) with apt-get'
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake g++ python3-venv python3-dev >/dev/null
fi

py="${PYTHON:-python3}"
"$py" -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' 2>/dev/null || {
  log "Python 3.11 is required (the ROS 2 $distro wheels are cp311); found: $($py --version 2>&1)"; exit 1; }

if [ -f "$venv/.vlm_nav_distro" ] && [ "$(cat "$venv/.vlm_nav_distro")" != "$distro" ]; then
  log "$venv holds ROS 2 $(cat "$venv/.vlm_nav_distro"), not $distro: one venv per distro" \
      "(unset VLM_NAV_VENV, or point it at another folder)"
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv (ROS 2 $distro)"
  "$py" -m venv "$venv"
fi
echo "$distro" >"$venv/.vlm_nav_distro"
pip() { "$venv/bin/python" -m pip "$@"; }
log 'installing pinned Python packages (first run: a few minutes)'
pip install -q --upgrade pip
pip install -q -r "$requirements"

log "building vlm_nav_interfaces with ROS 2 $distro's rosidl (colcon)"
# The rosidl wheels' CMake exports hard-code the wheel builder's Python include paths.
py_inc="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
np_inc="$("$venv/bin/python" -c 'import numpy; print(numpy.get_include())')"
grep -rl '/opt/python/cp311-cp311' "$venv/share" 2>/dev/null | while read -r f; do
  sed -i -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g" \
         -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" "$f"
done
build="$venv/.build_interfaces"
rm -rf "$build" && mkdir -p "$build"
(
  cd "$repo"
  export PATH="$venv/bin:$PATH" AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv"
  # Installed into the venv itself: the ROS wheels already put <venv>/lib on the library
  # path (ros_wheels_bootstrapper), where rmw looks up typesupport libraries by name.
  colcon --log-base "$build/log" build --base-paths vlm_nav_interfaces \
    --build-base "$build/build" --install-base "$venv" --merge-install \
    --event-handlers console_direct- \
    --cmake-args -DBUILD_TESTING=OFF \
      -DPython3_EXECUTABLE="$venv/bin/python" >"$build/colcon.out" 2>&1 \
    || { tail -n 40 "$build/colcon.out" >&2; log 'interface build failed'; exit 1; }
)

log 'installing vlm_nav (editable)'
pip install -q --no-deps --no-build-isolation -e "$repo"

"$venv/bin/python" -c 'import rclpy, vlm_nav_interfaces.srv, torch, transformers' || {
  log 'import check failed'; exit 1; }
echo "$want" >"$stamp"
log "ready: $venv"
