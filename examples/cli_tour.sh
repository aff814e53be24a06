#!/usr/bin/env bash
# A tour of the fedota-store command-line tool on a throwaway tree.
#
# It sets up a problem, commits a round the way services that are not written in
# Rust would, shows status and verify on the healthy tree, then damages it (a
# flipped byte in fl_checkpoint, text in a weight file, a leftover temporary file
# and an NFS .nfs file) and shows what verify, status, gc and doctor say.
#
# Usage: examples/cli_tour.sh [ROOT]
#   ROOT           an empty directory to use (default: a new temporary directory,
#                  removed at the end)
#   FEDOTA_STORE   the binary to run (default: build it with cargo, which honours
#                  CARGO_TARGET_DIR)
# Needs bash and python3.
set -euo pipefail

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

work=$(mktemp -d)
if [[ $# -ge 1 ]]; then
    root=$1
    mkdir -p "$root"
    trap 'rm -rf "$work"' EXIT
else
    root=$(mktemp -d)
    trap 'rm -rf "$work" "$root"' EXIT
fi
export FEDOTA_ROOT=$root

# Print a command, run it, and show its exit code; never stop on a failure, since
# showing failures is the point of the second half.
run() {
    echo "\$ fedota-store $*"
    local rc=0
    "$FEDOTA_STORE" "$@" || rc=$?
    echo "(exit $rc)"
    echo
}

echo "== a healthy tree in $root"
echo
head -c 4096 /dev/urandom >"$work/model.h5"
head -c 2048 /dev/urandom >"$work/initial.ckpt"
run init --problem mnist --model "$work/model.h5" --checkpoint "$work/initial.ckpt"

# Two selectors train on round 0 and commit their aggregates of round 0.
head -c 2048 /dev/urandom >"$work/agg1"
head -c 2048 /dev/urandom >"$work/agg2"
run commit-aggregate --problem mnist --selector s1.selector:50051 --round 0 --weight 120 "$work/agg1"
run commit-aggregate --problem mnist --selector s2.selector:50051 --round 0 --weight 80 "$work/agg2"

# The coordinator waits for both, averages them (here: takes one), commits round 1.
run wait --problem mnist --round 0 --aggregates 2 --timeout 10s
"$FEDOTA_STORE" cat --problem mnist aggregate --selector s1.selector:50051 --round 0 >"$work/merged"
run commit --problem mnist --round 1 "$work/merged"

run status
run verify

echo "== the same tree, damaged"
echo
init="$root/mnist/initFiles"
python3 - "$init/fl_checkpoint" <<'EOF'
import sys
path = sys.argv[1]
data = bytearray(open(path, "rb").read())
data[100] ^= 0x01
open(path, "wb").write(data)
EOF
printf 'eighty' >"$root/mnist/s2.selector:50051/fl_agg_checkpoint_weight"
echo "half a checkpoint" >"$init/.fedota-tmp.fl_checkpoint.node-a.4242.Xq3b9TzL1mKc"
touch -d '25 minutes ago' "$init/.fedota-tmp.fl_checkpoint.node-a.4242.Xq3b9TzL1mKc"
echo "held open on some client" >"$init/.nfs000000000012abcd00000001"
touch -d '2 hours ago' "$init/.nfs000000000012abcd00000001"

run verify
run status --problem mnist
run gc --dry-run
run gc
ls -a "$init"
echo
run doctor
