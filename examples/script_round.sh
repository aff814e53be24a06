#!/usr/bin/env bash
# Federated rounds driven only through the command line, as services written in
# Python or Go would drive them: selectors wait for the global checkpoint, read it
# verified, and commit their aggregates with weights; the coordinator waits for the
# aggregates of the round, reads each one of exactly that round, averages them by
# weight in Python, and commits the next global checkpoint.
#
# The "model" is a line of numbers so the averaging is easy to follow.
#
# Usage: examples/script_round.sh [ROUNDS]   (default 3)
#   FEDOTA_STORE   the binary to run (default: build it with cargo, which honours
#                  CARGO_TARGET_DIR)
# Needs bash and python3.
set -euo pipefail

rounds=${1:-3}
here=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z "${FEDOTA_STORE:-}" ]]; then
    # Build it, and take its path from cargo's report rather than guessing: that
    # follows CARGO_TARGET_DIR and any target-dir in cargo's config.
    FEDOTA_STORE=$(cargo build --quiet --message-format=json \
        --manifest-path "$here/Cargo.toml" --bin fedota-store |
        python3 -c '
import json, sys
for line in sys.stdin:
    message = json.loads(line)
    if message.get("reason") == "compiler-artifact" and message.get("executable"):
        print(message["executable"])
')
    if [[ -z "$FEDOTA_STORE" ]]; then
        echo "$0: cargo built no fedota-store executable" >&2
        exit 1
    fi
fi
fs() { "$FEDOTA_STORE" "$@"; }

root=$(mktemp -d)
work=$(mktemp -d)
# The selectors run in the background; on any early exit, stop those still running
# rather than leave them waiting for a checkpoint.
pids=()
names=()
cleanup() {
    if ((${#pids[@]} > 0)); then
        kill "${pids[@]}" 2>/dev/null || true
    fi
    rm -rf "$root" "$work"
}
trap cleanup EXIT
export FEDOTA_ROOT=$root

echo "0.0 0.0 0.0 0.0" >"$work/model"
echo "0.0 0.0 0.0 0.0" >"$work/global"
fs init --problem demo --model "$work/model" --checkpoint "$work/global"

# A selector: for each round, wait for the global checkpoint, read it verified,
# "train" (move towards its own target), commit the aggregate with its weight.
selector() {
    local id=$1 weight=$2 target=$3 dir="$work/$1"
    mkdir -p "$dir"
    for ((r = 0; r < rounds; r++)); do
        fs wait --problem demo --round "$r" --timeout 60s >/dev/null
        fs cat --problem demo checkpoint --round "$r" >"$dir/global"
        python3 - "$dir/global" "$target" >"$dir/aggregate" <<'EOF'
import sys
weights = [float(x) for x in open(sys.argv[1]).read().split()]
target = float(sys.argv[2])
print(" ".join(f"{w + 0.5 * (target - w):.4f}" for w in weights))
EOF
        fs commit-aggregate --problem demo --selector "$id" --round "$r" \
            --weight "$weight" "$dir/aggregate" >/dev/null
    done
}

selector s1.selector:50051 300 1.0 &
pids+=($!)
names+=(s1.selector:50051)
selector s2.selector:50051 100 -1.0 &
pids+=($!)
names+=(s2.selector:50051)

# The coordinator: wait for both aggregates of round r, read each of exactly round
# r (with its weight, from the JSON report), average by weight, commit round r + 1.
for ((r = 0; r < rounds; r++)); do
    fs wait --problem demo --round "$r" --aggregates 2 --timeout 60s
    args=()
    for s in s1.selector:50051 s2.selector:50051; do
        out="$work/coord-$s"
        weight=$(fs cat --problem demo aggregate --selector "$s" --round "$r" \
            --output "$out" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["weight"])')
        args+=("$out" "$weight")
    done
    python3 - "${args[@]}" >"$work/next" <<'EOF'
import sys
pairs = list(zip(sys.argv[1::2], sys.argv[2::2]))
total = sum(int(w) for _, w in pairs)
rows = [([float(x) for x in open(p).read().split()], int(w)) for p, w in pairs]
avg = [sum(v[i] * w for v, w in rows) / total for i in range(len(rows[0][0]))]
print(" ".join(f"{x:.4f}" for x in avg))
EOF
    fs commit --problem demo --round $((r + 1)) "$work/next"
    echo "  global checkpoint of round $((r + 1)): $(fs cat --problem demo checkpoint)"
done

# Each selector must have finished its rounds without an error.
for i in "${!pids[@]}"; do
    if ! wait "${pids[$i]}"; then
        echo "$0: selector ${names[$i]} failed" >&2
        exit 1
    fi
done
pids=()

fs status
fs verify
