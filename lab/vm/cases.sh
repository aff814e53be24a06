# The lab's cases, driven from the server VM (or the smoke VM). Client B's
# part of each case runs through on_b. Sourced by /init after lib.sh.

# Where lock holders and contenders can stand (see lib.sh for the paths).
POSITIONS="S A A3 B B3"

# Prints the lab directory of position $1.
pos_dir() {
    case $1 in
        S) echo "$S" ;; A) echo "$A" ;; A3) echo "$A3" ;; B) echo "$B" ;; B3) echo "$B3" ;;
    esac
}

# Succeeds if position $1 is on client B's VM (or B's mounts, in smoke).
pos_is_b() { case $1 in B | B3) return 0 ;; *) return 1 ;; esac; }

# Runs shell command $2 where position $1 is: here, or on client B.
run_at() {
    if pos_is_b "$1"; then on_b "$2"; else (eval "$2"); fi
}

# Succeeds if case group $1 was asked for (lab.cases, default all).
want() {
    case ",${LAB_CASES:-all}," in
        *,all,* | *,"$1",*) log "case group $1"; return 0 ;;
        *) return 1 ;;
    esac
}

# Runs every case asked for, in order.
run_cases() {
    case_mounts || return
    wait_for_grace || return
    if ! want matrix; then
        :
    elif [ "$TOPOLOGY" = pair ]; then
        case_lock_matrix on
        case_lock_matrix off
        set_delegations on
    else
        case_lock_matrix "${LAB_DELEG:-off}"
    fi
    if command -v nfs_conformance >/dev/null; then
        run_conformance_cases
    else
        result conformance SKIP "examples/nfs_conformance.rs does not exist yet"
    fi
}

# Checks that A's and B's mounts are there with the versions asked for.
case_mounts() {
    here=$(show_mounts)
    there=$(on_b show_mounts)
    echo "$here" | sed 's/^/  server-vm mount: /'
    echo "$there" | sed 's/^/  client-b mount: /'
    missing=""
    echo "$here" | grep -q '^/mnt/a nfs4 .*vers=4.2' || missing="$missing A(v4.2)"
    echo "$here" | grep -q '^/mnt/a3 nfs .*vers=3' || missing="$missing A3(v3)"
    echo "$there" | grep -q '^/mnt/b nfs4 .*vers=4.2' || missing="$missing B(v4.2)"
    echo "$there" | grep -q '^/mnt/b3 nfs .*vers=3' || missing="$missing B3(v3)"
    if [ -n "$missing" ]; then
        result mounts FAIL "missing:$missing"
        return 1
    fi
    info "client A v4.2 options: $(echo "$here" | awk '$1 == "/mnt/a" {print $3}')"
    t0=$(uptime_s)
    for i in 1 2 3 4 5; do on_b true; done
    info "command channel to client B: 5 round trips in $(echo "$(uptime_s) $t0" | awk '{printf "%.2f", $1 - $2}') s"
    result mounts PASS "A v4.2, A v3, B v4.2, B v3 mounted after $(uptime_s)s"
}

# Waits until locks can be taken on every mount, that is, until the server's
# grace period (15 s for NFSv4, 10 s for NLM) is over.
wait_for_grace() {
    t0=$(uptime_s)
    out=$(lockprobe wait ofd 90 "$A/.grace-a" && lockprobe wait ofd 90 "$A3/.grace-a3" &&
        on_b "lockprobe wait ofd 90 $B/.grace-b && lockprobe wait ofd 90 $B3/.grace-b3")
    if [ $? -ne 0 ]; then
        echo "$out"
        result grace FAIL "a lock could not be taken within 90 s on every mount"
        return 1
    fi
    log "grace period over (waited from $t0 to $(uptime_s))"
}

# Holds a lock from each position in turn and tries the same kind of lock from
# every other position, on a fresh file per pair. Prints the observed matrix,
# and requires that positions on different NFS clients exclude each other.
# Kinds: ofd and flock (raw, by lockprobe) and crate (fedota-store's
# coordinator lock, by nfs_conformance, on a fresh problem per pair).
# $1 = on or off: delegations during this phase.
case_lock_matrix() {
    phase=$1
    set_delegations "$phase"
    failures=""
    kinds="ofd flock"
    command -v nfs_conformance >/dev/null && kinds="$kinds crate"
    for kind in $kinds; do
        for h in $POSITIONS; do
            lock_matrix_row "$phase" "$kind" "$h"
        done
        echo "LAB-MATRIX deleg=$phase $kind: row holds, column tries; excl = blocked, OPEN = both held it, * = answer took over 5 s"
        echo "LAB-MATRIX deleg=$phase $kind   holder   S     A     A3    B     B3     files with a delegation while held"
        for h in $POSITIONS; do
            line=$(printf '%-6s' "$h")
            for c in $POSITIONS; do
                eval "cell=\${M_${h}_$c:--}"
                line="$line$(printf '%-6s' "$cell")"
                if [ "${cell%\*}" != excl ] && [ "$h" != "$c" ]; then
                    case "$h$c" in
                        A*B* | B*A*) failures="$failures $kind:$h->$c=$cell" ;;
                    esac
                fi
            done
            eval "d=\${D_$h}"
            echo "LAB-MATRIX deleg=$phase $kind   $line $d"
        done
    done
    if [ -n "$failures" ]; then
        result "lock-cross-client-deleg-$phase" FAIL "did not exclude:$failures"
    else
        result "lock-cross-client-deleg-$phase" PASS "$(echo $kinds | sed 's/ /, /g') locks on client A (v3, v4.2) and client B (v3, v4.2) exclude each other"
    fi
}

# One row of the matrix: position $3 holds kind-$2 locks on one fresh file per
# other position, and each other position tries its file. Sets M_holder_contender.
lock_matrix_row() {
    phase=$1 kind=$2 h=$3
    files="" roots="" setup=""
    for c in $POSITIONS; do
        [ "$c" = "$h" ] && continue
        f=m-$phase-$kind-$h-$c
        files="$files $(pos_dir "$h")/$f"
        roots="$roots --root $(pos_dir "$h")/$f"
        setup="$setup --root $S/$f"
        [ "$kind" = crate ] || : >"$S/$f"
    done
    ready=$CTL/held-$phase-$kind-$h
    if [ "$kind" = crate ]; then
        nfs_conformance setup $setup >/dev/null || echo "  setup of the crate's problems failed"
        hold="nfs_conformance hold --secs 120 --ready $ready $roots"
    else
        hold="lockprobe hold $kind 120 $ready $files"
    fi
    run_at "$h" "$hold >/tmp/hold.out 2>&1 & echo \$! >/tmp/hold.pid"
    if ! await_file "$ready" 60; then
        run_at "$h" "cat /tmp/hold.out"
        for c in $POSITIONS; do eval "M_${h}_$c=noholder"; done
        return
    fi
    eval "D_$h=$(count_delegations "$phase-$kind-$h-")"
    here="" there=""
    for c in $POSITIONS; do
        [ "$c" = "$h" ] && continue
        if [ "$kind" = crate ]; then
            try="timeout 30 nfs_conformance try-lock --root $(pos_dir "$c")/m-$phase-$kind-$h-$c"
        else
            try="timeout 30 lockprobe try $kind $(pos_dir "$c")/m-$phase-$kind-$h-$c"
        fi
        # Each try runs in parallel with the others, and reports how long it took.
        try="(t0=\$(uptime_s); $try; echo \"took $c \$(uptime_s) \$t0\") &"
        if pos_is_b "$c"; then there="$there $try"; else here="$here $try"; fi
    done
    (eval "$here wait") >/tmp/here.out 2>&1 &
    local_tries=$!
    out="$(on_b "$there wait" 2>&1)"
    wait $local_tries
    out="$out
$(cat /tmp/here.out)"
    for c in $POSITIONS; do
        [ "$c" = "$h" ] && continue
        f=m-$phase-$kind-$h-$c
        slow=$(echo "$out" | awk -v c="$c" '$1 == "took" && $2 == c && $3 - $4 > 5 {print "*"}')
        if echo "$out" | grep -q "^blocked .*/$f\( \|\$\)"; then
            eval "M_${h}_$c=excl$slow"
        elif echo "$out" | grep -q "^acquired .*/$f\( \|\$\)"; then
            eval "M_${h}_$c=OPEN$slow"
        else
            eval "M_${h}_$c=error"
            echo "$out" | grep "$f" | sed 's/^/  /'
        fi
    done
    run_at "$h" 'kill $(cat /tmp/hold.pid); while kill -0 $(cat /tmp/hold.pid) 2>/dev/null; do usleep 50000; done'
}

# Prints how many of the lock files of matrix row $1 (files m-$1*, or the
# crate's lock file in problems m-$1*) have a delegation out, according to the
# server's /proc/locks.
count_delegations() {
    n=0
    for f in "$S"/m-$1* "$S"/m-$1*/p/initFiles/.fedota-coordinator.lock; do
        [ -f "$f" ] || continue
        ino=$(stat -c %i "$f")
        awk -v ino=":$ino" '$2 == "DELEG" && $6 ~ ino"$" {found=1} END {exit !found}' /proc/locks &&
            n=$((n + 1))
    done
    echo "$n"
}

# The crate-level cases; they need the nfs_conformance example.
run_conformance_cases() {
    want lock && case_lock_while_committing
    want reader && case_reader_during_commits && case_no_nfs_files after-commits
    want killed && case_coordinator_killed
    want fencing && case_fencing_after_lease_loss
    want doctor && case_doctor
    case_no_nfs_files at-end
}

# Prints the last line of file $1 (the OK or FAIL line of nfs_conformance).
verdict() { tail -n 1 "$1" 2>/dev/null; }

# Reports case $1 from nfs_conformance output $2: PASS on an OK line, else FAIL.
report() {
    last=$(echo "$2" | tail -n 1)
    case $last in
        "OK "*) result "$1" PASS "${last#OK }" ;;
        "FAIL "*) result "$1" FAIL "${last#FAIL }" ;;
        *) result "$1" FAIL "no verdict: $(echo "$2" | tail -n 3 | tr '\n' ' ')" ;;
    esac
}

# Client A's coordinator holds the lock and keeps committing fl_checkpoint
# (each commit renames a new inode over it); client B, through NFSv4.2 and
# NFSv3, keeps trying to become coordinator. Every try must fail with the
# lock-held error naming A's host.
case_lock_while_committing() {
    nfs_conformance setup --root "$S/lockc" >/dev/null
    nfs_conformance hold --root "$A/lockc" --ready "$CTL/lockc-held" --secs 25 \
        --commit-every-ms 20 >/tmp/lockc.out 2>&1 &
    holder=$!
    if ! await_file "$CTL/lockc-held" 60; then
        result lock-while-committing FAIL "client A never took the lock: $(cat /tmp/lockc.out)"
        return
    fi
    out=$(on_b "nfs_conformance try-lock --root $B/lockc --repeat 30 --interval-ms 300 --expect-holder-host $(hostname) 2>&1;
                nfs_conformance try-lock --root $B3/lockc --repeat 10 --interval-ms 300 --expect-holder-host $(hostname) 2>&1")
    wait $holder
    held=$(verdict /tmp/lockc.out)
    v4=$(echo "$out" | grep -E '^(OK|FAIL)' | head -n 1)
    v3=$(echo "$out" | grep -E '^(OK|FAIL)' | tail -n 1)
    echo "$out" | grep -v '^OK' | sed 's/^/  /'
    case "$held|$v4|$v3" in
        "OK "*"|OK "*"|OK "*) result lock-while-committing PASS "B v4.2: ${v4#OK }; B v3: ${v3#OK }; A: ${held#OK }" ;;
        *) result lock-while-committing FAIL "A: $held; B v4.2: $v4; B v3: $v3" ;;
    esac
}

# Client A commits 500 rounds of the global checkpoint while client B reads it
# continuously: no torn or mixed read, and how stale B's reads were.
case_reader_during_commits() {
    nfs_conformance setup --root "$S/rw" >/dev/null
    on_b "nfs_conformance read-loop --root $B/rw --until-round 500 --timeout-secs 300 --log $B/rw-reader.log >/tmp/rw.out 2>&1 & echo \$! >/tmp/rw.pid" >/dev/null
    sleep 1
    writer=$(nfs_conformance commit-loop --root "$A/rw" --count 500 --log "$A/rw-writer.log" 2>&1)
    log "writer done: $(echo "$writer" | tail -n 1)"
    reader=$(ON_B_TIMEOUT=330 on_b 'while kill -0 $(cat /tmp/rw.pid) 2>/dev/null; do usleep 200000; done; cat /tmp/rw.out')
    echo "$writer" | sed 's/^/  writer: /'
    echo "$reader" | sed 's/^/  reader: /'
    report reader-during-commits "$reader"
    report commits-by-a "$writer"
    lag=$(nfs_conformance staleness --writer-log "$S/rw-writer.log" --reader-log "$S/rw-reader.log" 2>&1 | tail -n 1)
    info "staleness of client B's reads: ${lag#OK }"
    return 0
}

# No .nfs* file (an NFS client's silly rename) is left anywhere in the export.
case_no_nfs_files() {
    left=$(find "$EXPORT" -name '.nfs*' | head -n 5)
    if [ -n "$left" ]; then
        result "no-nfs-files-$1" FAIL "found: $(echo $left)"
    else
        result "no-nfs-files-$1" PASS "no .nfs* file in the export ($(find "$EXPORT" -type f | wc -l) files)"
    fi
}

# The coordinator on A is killed with SIGKILL while committing 8 MiB
# checkpoints; a new coordinator on B must get the lock, find a verified old
# or new version (or the documented unfinished-commit error), and commit.
case_coordinator_killed() {
    nfs_conformance setup --root "$S/crash" >/dev/null
    nfs_conformance crash-loop --root "$A/crash" >/tmp/crash.out 2>&1 &
    victim=$!
    for i in $(seq 1 600); do
        grep -q '^committed round 3$' /tmp/crash.out && break
        kill -0 $victim 2>/dev/null || break
        usleep 100000
    done
    usleep $((RANDOM % 1000 * 1000))
    kill -9 $victim
    wait $victim 2>/dev/null
    last=$(tail -n 1 /tmp/crash.out)
    tmp=$(find "$S/crash" -name '.fedota-tmp.*' | wc -l)
    info "coordinator-killed: SIGKILL after '$last'; $tmp temporary file(s) left behind"
    out=$(on_b "nfs_conformance takeover --root $B/crash --wait-secs 60 2>&1")
    echo "$out" | sed 's/^/  takeover: /'
    report coordinator-killed "$out"
    report verify-after-takeover "$(nfs_conformance verify --root "$A/crash" 2>&1)"
    report gc-after-kill "$(on_b "nfs_conformance gc --root $B/crash 2>&1")"
}

# A coordinator on B loses its lock without knowing it: B is cut off from the
# network for longer than the NFSv4 lease (15 s here), A takes over, and when
# B comes back its commit must be refused by the fencing check.
case_fencing_after_lease_loss() {
    if [ "$TOPOLOGY" != pair ]; then
        result fencing-after-lease-loss SKIP "needs two NFS clients (two VMs)"
        return
    fi
    nfs_conformance setup --root "$S/fence" >/dev/null
    on_b "nfs_conformance stale-commit --root $B/fence --ready $CTL/fence-ready --go /tmp/fence-go --go-timeout-secs 200 >/tmp/fence.out 2>&1 & echo \$! >/tmp/fence.pid" >/dev/null
    if ! await_file "$CTL/fence-ready" 60; then
        result fencing-after-lease-loss FAIL "B's coordinator did not start: $(on_b 'cat /tmp/fence.out')"
        return
    fi
    on_b "(sleep 2; ip link set eth0 down; sleep 35; ip link set eth0 up; touch /tmp/fence-go) >/dev/null 2>&1 &" >/dev/null
    sleep 4
    t0=$(uptime_s)
    taken=$(nfs_conformance takeover --root "$A/fence" --wait-secs 90 2>&1)
    echo "$taken" | sed 's/^/  takeover on A: /'
    late=$(ON_B_TIMEOUT=240 on_b 'while kill -0 $(cat /tmp/fence.pid) 2>/dev/null; do usleep 200000; done; cat /tmp/fence.out')
    echo "$late" | sed 's/^/  late commit on B: /'
    info "fencing: B cut off at ~$t0 s for 35 s; A's takeover: $(echo "$taken" | tail -n 1)"
    report takeover-after-lease-loss "$taken"
    report fencing-after-lease-loss "$late"
}

# Whether the crate's lock excludes across clients when client A uses mount
# directory $1 (for example a nolock mount) and client B its normal v4.2 mount:
# A holds and B tries, then B holds and A tries. Prints "excl" if both tries
# were refused, else what happened.
crate_lock_across() {
    tag=x$(basename "$(dirname "$1")")
    nfs_conformance setup --root "$S/$tag-1" --root "$S/$tag-2" >/dev/null
    nfs_conformance hold --root "$1/$tag-1" --ready "$CTL/$tag-1" --secs 60 >/tmp/$tag.out 2>&1 &
    holder=$!
    await_file "$CTL/$tag-1" 60
    b_try=$(on_b "nfs_conformance try-lock --root $B/$tag-1 2>&1 | tail -n 1")
    kill $holder; wait $holder 2>/dev/null
    on_b "nfs_conformance hold --root $B/$tag-2 --ready $CTL/$tag-2 --secs 60 >/tmp/$tag.out 2>&1 & echo \$! >/tmp/$tag.pid" >/dev/null
    await_file "$CTL/$tag-2" 60
    a_try=$(nfs_conformance try-lock --root "$1/$tag-2" 2>&1 | tail -n 1)
    on_b "kill \$(cat /tmp/$tag.pid)" >/dev/null
    if [ "${b_try%% *}|${a_try%% *}" = "OK|OK" ]; then
        echo excl
    else
        echo "B's try: $b_try; A's try: $a_try"
    fi
}

# Runs fedota-store doctor on root $2 and reports case doctor-$1; $3 is the
# expected exit code.
doctor_case() {
    out=$(timeout 180 fedota-store doctor --root "$2" 2>&1)
    rc=$?
    echo "$out" | sed "s/^/  doctor $1: /"
    line=$(echo "$out" | grep '^doctor: ' | tail -n 1)
    if [ $rc -eq "$3" ]; then
        result "doctor-$1" PASS "exit $rc as expected: ${line:-no summary line}"
    else
        result "doctor-$1" FAIL "exit $rc, expected $3: ${line:-no summary line}"
    fi
}

# What doctor says about a nolock and a local_lock=flock mount and a healthy
# NFSv4.2 mount, checked against what the crate's lock really does through each
# (measured here across clients A and B). A mount whose locks do not exclude
# must fail; a mount whose locks do exclude must not fail for that reason.
# With two VMs, also doctor --peer on A and B at once.
case_doctor() {
    if ! command -v fedota-store >/dev/null || ! fedota-store doctor --help >/dev/null 2>&1; then
        result doctor SKIP "fedota-store was not built or has no doctor command"
        return
    fi
    # nosharecache: without it, the kernel may reuse client A's superblock for a
    # second mount of the same export and silently drop the new lock option.
    # local_lock and nolock are NFSv2/v3 options (nfs(5)); an NFSv4.2 mount with
    # local_lock=flock is made too, to show what the kernel does with it.
    server=${LAB_IP:-127.0.0.1}
    nfs_mount "$server:$EXPORT" /mnt/nolock "vers=3,nolock,nosharecache" &&
        nfs_mount "$server:$EXPORT" /mnt/llflock "vers=3,local_lock=flock,nosharecache" &&
        nfs_mount "$server:/" /mnt/llflock4 "vers=4.2,local_lock=flock,nosharecache" || {
        result doctor FAIL "could not mount the nolock and local_lock=flock views"
        return
    }
    info "NFSv4.2 mounted with local_lock=flock shows: $(show_mounts | awk '$1 == "/mnt/llflock4"' | grep -o 'local_lock=[a-z]*')"
    if ! show_mounts | grep -q '^/mnt/nolock .*nolock' ||
        ! show_mounts | grep -q '^/mnt/llflock .*local_lock=flock'; then
        show_mounts | sed 's/^/  /'
        result doctor FAIL "the nolock or local_lock=flock option did not take effect"
        return
    fi
    for view in nolock llflock; do
        across=$(crate_lock_across "/mnt/$view/lab")
        info "the crate's lock, client A through its $view mount vs client B: $across"
        eval "ACROSS_$view=\$across"
        mkdir -p "$S/doctor-$view"
        if [ "$across" = excl ]; then want=0; else want=1; fi
        doctor_case "$view" "/mnt/$view/lab/doctor-$view" "$want"
    done
    mkdir -p "$S/doctor-v42"
    doctor_case healthy-v4.2 "$A/doctor-v42" 0

    if [ "$TOPOLOGY" = pair ]; then
        doctor_peer_case doctor-peer "$A" excl 0
        # A's doctor fails on the nolock mount itself whatever the peer finds.
        if [ "$ACROSS_nolock" = excl ]; then peer=excl; else peer=open; fi
        doctor_peer_case doctor-peer-nolock /mnt/nolock/lab "$peer" 1
    fi
}

# Runs fedota-store doctor --peer on client A (under mount directory $2) and on
# client B (its v4.2 mount) at once, and reports case $1. $3 is what the crate's
# lock really does between those two mounts, as measured by crate_lock_across.
# excl: no peer finding may fail, B must exit 0 and A must exit $4. open: both
# must exit 1 with a failed peer-lock finding (B's mount is healthy, so that
# finding is the only thing that can fail there).
doctor_peer_case() {
    name=$1 a_dir=$2 expect=$3 a_want=$4
    mkdir -p "$S/$name"
    on_b "timeout 100 fedota-store doctor --peer --timeout 30s --root $B/$name >/tmp/$name.out 2>&1; echo \$? >/tmp/$name.rc" >/dev/null 2>&1 &
    b_side=$!
    here=$(timeout 100 fedota-store doctor --peer --timeout 30s --root "$a_dir/$name" 2>&1)
    rc=$?
    # Only B's side: a bare wait in PID 1 would also wait for rpcbind and the
    # watchdog, which never end.
    wait $b_side
    there=$(on_b "cat /tmp/$name.out; echo \"exit \$(cat /tmp/$name.rc)\"")
    echo "$here" | sed "s/^/  $name on A: /"
    echo "$there" | sed "s/^/  $name on B: /"
    b_rc=$(echo "$there" | tail -n 1)
    if [ "$expect" = excl ]; then
        if [ $rc -eq "$a_want" ] && [ "$b_rc" = "exit 0" ] &&
            ! echo "$here$there" | grep -q 'FAIL  peer-'; then
            result "$name" PASS "A and B each proved the other's lock keeps it out (A exit $rc)"
        else
            result "$name" FAIL "A exit $rc, wanted $a_want; B $b_rc; no peer finding should fail"
        fi
    elif [ $rc -eq 1 ] && [ "$b_rc" = "exit 1" ] &&
        echo "$here" | grep -q 'FAIL  peer-lock-held-' &&
        echo "$there" | grep -q 'FAIL  peer-lock-held-'; then
        result "$name" PASS "A and B each found that the other got the lock too, and failed"
    else
        result "$name" FAIL "A exit $rc; B $b_rc; both should report a failed peer lock"
    fi
}
