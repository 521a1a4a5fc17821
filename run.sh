#!/usr/bin/env bash
# One entry point for the pip path: sets up the venv on first use (scripts/setup_env.sh),
# then runs `demo`, `test`, or any `vlm-nav` subcommand inside it. The ROS 2 distro is
# VLM_NAV_ROS_DISTRO: kilted (default, .venv) or jazzy (.venv-jazzy); VLM_NAV_VENV overrides
# the venv's path.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$repo/scripts/setup_env.sh"
venv="$(bash "$repo/scripts/setup_env.sh" --print-venv)"
export PATH="$venv/bin:$PATH"
# Big images between processes: shared-memory transport avoids Fast DDS fragmentation.
export FASTDDS_BUILTIN_TRANSPORTS="${FASTDDS_BUILTIN_TRANSPORTS:-LARGE_DATA}"
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
cd "$repo"
command="${1:-demo}"
[ $# -gt 0 ] && shift
case "$command" in
  demo) exec vlm-nav demo "$@" ;;
  test) exec python -m pytest -q -p no:cacheprovider "$@" ;;
  *) exec vlm-nav "$command" "$@" ;;
esac
