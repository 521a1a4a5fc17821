#!/usr/bin/env bash
# One entry point for the pip path: sets up .venv on first use (scripts/setup_env.sh),
# then runs `demo`, `test`, or any `vlm-nav` subcommand inside it.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
bash "$repo/scripts/setup_env.sh"
venv="${VLM_NAV_VENV:-$repo/.venv}"
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
