# Shared helpers for the lab VMs: booting, NFS daemons, mounts, and the
# command channel between the two VMs. Sourced by /init (busybox sh).
#
# Paths every case uses, the same in both topologies:
#   S  = /srv/export/lab   the export itself, on the server (no NFS)
#   A  = /mnt/a/lab        client A, NFSv4.2 (server VM)
#   A3 = /mnt/a3/lab       client A, NFSv3   (server VM)
#   B  = /mnt/b/lab        client B, NFSv4.2 (client VM; in smoke, a second mount)
#   B3 = /mnt/b3/lab       client B, NFSv3
#   CTL= /mnt/sync         rendezvous files, mounted noac,lookupcache=none
S=/srv/export/lab
A=/mnt/a/lab
A3=/mnt/a3/lab
B=/mnt/b/lab
B3=/mnt/b3/lab
CTL=/mnt/sync
EXPORT=/srv/export

# Seconds since boot, with two decimals.
uptime_s() { cut -d' ' -f1 /proc/uptime; }

# Prints a progress line on the console.
log() { echo "[$(uptime_s) $ROLE] $*"; }

# Reports one case result; the host collects these lines, and compares their
# number with the count in the LAB-DONE line (results_reported).
# result CASE PASS|FAIL|SKIP DETAIL...
result() {
    case_name=$1 status=$2
    shift 2
    log "$case_name: $status"
    echo "$case_name" >>/tmp/lab-results
    echo "LAB-RESULT $case_name $status $*"
}

# Prints how many results this VM reported.
results_reported() { cat /tmp/lab-results 2>/dev/null | wc -l; }

# Reports a fact the host prints in its summary.
info() { echo "LAB-INFO $*"; }

# Waits until file $1 exists, polling every 0.1 s; fails after $2 seconds.
await_file() {
    deadline=$(( $(cut -d. -f1 /proc/uptime) + $2 ))
    while [ ! -e "$1" ]; do
        [ "$(cut -d. -f1 /proc/uptime)" -lt "$deadline" ] || return 1
        usleep 100000
    done
}

# Loads the kernel modules, sets the host name and brings up the network.
boot_common() {
    log "booted $(uname -r)"
    for m in nfsd nfs nfsv3 nfsv4 virtio_pci virtio_net; do
        modprobe "$m" || log "modprobe $m failed"
    done
    hostname "${ROLE}"
    ip link set lo up
    if [ -n "${LAB_IP:-}" ]; then
        waited=0
        while ! ip link show eth0 >/dev/null 2>&1; do
            waited=$((waited + 1))
            [ $waited -lt 50 ] || { log "no eth0"; break; }
            usleep 100000
        done
        ip addr add "$LAB_IP/24" dev eth0
        ip link set eth0 up
    fi
}

# Starts rpcbind and rpc.statd, which both NFSv3 clients and servers need.
start_rpc() {
    rpcbind -f -w &
    RPCBIND_PID=$!
    for i in 1 2 3 4 5 6 7 8 9 10; do
        rpcinfo -p 127.0.0.1 >/dev/null 2>&1 && break
        usleep 200000
    done
    rpc.statd --no-notify || log "rpc.statd failed"
}

# Starts nfsd exporting a fresh tmpfs with fsid=0. $1 is on or off: whether
# nfsd may hand out delegations (fs.leases-enable). Lease and grace times are
# nfsd's shortest, 10 s, so the lab does not wait 90 s for the grace period to
# end, and the fencing case need not cut a client off for long.
start_nfs_server() {
    mkdir -p "$EXPORT"
    mount -t tmpfs -o size=512m tmpfs "$EXPORT"
    mkdir -p "$S" "$EXPORT/ctl"
    echo "$EXPORT *(rw,fsid=0,no_root_squash,no_subtree_check,insecure,sync)" >/etc/exports
    mkdir -p /proc/fs/nfsd && mount -t nfsd nfsd /proc/fs/nfsd
    set_delegations "$1"
    echo 10 >/proc/sys/fs/nfs/nlm_grace_period
    start_rpc
    exportfs -ra || log "exportfs failed"
    rpc.mountd || log "rpc.mountd failed"
    rpc.nfsd --lease-time 10 --grace-time 10 8 || log "rpc.nfsd failed"
    log "nfsd up: $(cat /proc/fs/nfsd/versions), delegations $1"
}

# Turns delegations on or off for delegations granted from now on.
set_delegations() {
    if [ "$1" = off ]; then echo 0; else echo 1; fi >/proc/sys/fs/leases-enable
}

# Mounts with mount.nfs, retrying for up to 60 s: mount SPEC DIR OPTIONS.
nfs_mount() {
    mkdir -p "$2"
    for i in $(seq 1 30); do
        mount.nfs "$1" "$2" -o "$3" 2>/tmp/mount.err && return 0
        sleep 2
    done
    log "mount.nfs $1 $2 -o $3 failed: $(cat /tmp/mount.err)"
    return 1
}

# Mounts one NFS client's view: $1 = a or b, $2 = server address, $3 extra options.
mount_client() {
    nfs_mount "$2:/" "/mnt/$1" "vers=4.2$3" &&
        nfs_mount "$2:$EXPORT" "/mnt/${1}3" "vers=3$3"
}

# Mounts the rendezvous directory with no attribute or lookup caching.
mount_sync() {
    nfs_mount "$1:/ctl" "$CTL" "vers=4.2,noac,lookupcache=none$2"
}

# Prints the NFS mounts with their options, one per line.
show_mounts() {
    awk '$3 ~ /^nfs/ {print $2, $3, $4}' /proc/mounts
}

# Runs a shell command on client B and prints its output; returns its status.
# Two VMs: the command goes through $CTL (cmd.N, answered by out.N and rc.N).
# Smoke: B is a mount in this VM, so the command runs here. The sequence
# number lives in a file, so on_b also works inside $(...).
on_b() {
    if [ "$TOPOLOGY" = smoke ]; then
        (eval "$*")
        return $?
    fi
    B_SEQ=$(( $(cat /tmp/on_b.seq 2>/dev/null || echo 0) + 1 ))
    echo "$B_SEQ" >/tmp/on_b.seq
    printf '%s\n' "$*" >"$CTL/cmd.$B_SEQ.tmp" && mv "$CTL/cmd.$B_SEQ.tmp" "$CTL/cmd.$B_SEQ"
    if ! await_file "$CTL/rc.$B_SEQ" "${ON_B_TIMEOUT:-180}"; then
        echo "on_b: client B did not answer command $B_SEQ within ${ON_B_TIMEOUT:-180}s: $*"
        return 124
    fi
    cat "$CTL/out.$B_SEQ"
    return "$(cat "$CTL/rc.$B_SEQ")"
}

# Client B's side of on_b: runs cmd.1, cmd.2, ... until the command "exit".
# Commands run in a subshell of this one, so they can call the lab's functions.
agent_loop() {
    n=1
    while :; do
        if ! await_file "$CTL/cmd.$n" 600; then
            log "agent: no command $n for 600 s, giving up"
            return 1
        fi
        cmd=$(cat "$CTL/cmd.$n")
        if [ "$cmd" = exit ]; then
            : >"$CTL/out.$n"
            echo 0 >"$CTL/rc.$n"
            return 0
        fi
        (eval "$cmd") >/tmp/agent.out 2>&1 </dev/null
        rc=$?
        cp /tmp/agent.out "$CTL/out.$n.tmp" && mv "$CTL/out.$n.tmp" "$CTL/out.$n"
        echo $rc >"$CTL/rc.$n.tmp" && mv "$CTL/rc.$n.tmp" "$CTL/rc.$n"
        n=$((n + 1))
    done
}

# The server VM: nfsd with delegations on, client A's mounts, then the cases.
role_server() {
    TOPOLOGY=pair
    start_nfs_server "${LAB_DELEG:-on}"
    mount_client a "$LAB_IP" "" && mount_sync "$LAB_IP" "" || {
        result boot FAIL "client A could not mount the export"
        return
    }
    log "waiting for client B"
    if ! await_file "$CTL/client-ready" 240; then
        result boot FAIL "client B did not report ready within 240 s"
        return
    fi
    info "topology: two VMs; server $(uname -n) $LAB_IP runs nfsd and client A, client VM $LAB_PEER runs client B"
    run_cases
    on_b exit >/dev/null
}

# The client VM: waits for the server, mounts as client B, serves on_b.
role_client() {
    TOPOLOGY=pair
    start_rpc
    for i in $(seq 1 120); do
        ping -c 1 -W 1 "$LAB_PEER" >/dev/null 2>&1 && break
    done
    mount_client b "$LAB_PEER" "" && mount_sync "$LAB_PEER" "" || {
        log "client B could not mount the export"
        return
    }
    log "mounted: $(show_mounts | tr '\n' ';')"
    touch "$CTL/client-ready"
    agent_loop
}

# One VM: nfsd with delegations off, and both clients' mounts. B's mounts use
# nosharecache, so they have their own caches, but they are the same client.
role_smoke() {
    TOPOLOGY=smoke
    start_nfs_server "${LAB_DELEG:-off}"
    mount_client a 127.0.0.1 "" && mount_client b 127.0.0.1 ",nosharecache" &&
        mount_sync 127.0.0.1 "" || {
        result boot FAIL "the export could not be mounted"
        return
    }
    info "topology: smoke, one VM; A and B are two mounts of one NFS client; delegations ${LAB_DELEG:-off}"
    run_cases
}
