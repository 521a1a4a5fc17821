#!/usr/bin/env bash
# Run tests beside busy loops, to find timing races before a loaded CI machine does.
#   HOGS=2 ROUNDS=3 bash scripts/test_under_load.sh test/ros/test_faults.py test/ros/test_sim_node.py
# HOGS busy loops (default 2: as many as this machine's cores), ROUNDS runs of pytest on
# the given tests (default: the whole suite); each round's log goes to $LOGS/round<i>.log.
set -uo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
logs="${LOGS:-$(mktemp -d /tmp/vlm_nav_load.XXXX)}"
mkdir -p "$logs"
hogs=()
for _ in $(seq 1 "${HOGS:-2}"); do
  python3 -c 'while True: pass' &
  hogs+=($!)
done
trap '[ ${#hogs[@]} -gt 0 ] && kill "${hogs[@]}"' EXIT
failed=0
for round in $(seq 1 "${ROUNDS:-1}"); do
  "$repo/run.sh" test -rfE "${@:-test}" > "$logs/round$round.log" 2>&1 || failed=$((failed + 1))
  echo "round $round: $(tail -n 1 "$logs/round$round.log")  ($logs/round$round.log)"
  grep -E '^(FAILED|ERROR) ' "$logs/round$round.log"
done
echo "$failed of ${ROUNDS:-1} rounds failed"
exit $(( failed > 0 ))
