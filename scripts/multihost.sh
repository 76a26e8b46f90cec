#!/usr/bin/env bash
# Run an MPI job on N test hosts made on this machine: network namespaces cabled to one bridge, MPICH's hydra
# launching across them. Needs root and `ip netns`; docs/cluster.md ("Testing across hosts with the harness").
#
#   scripts/multihost.sh [--hosts N] [--ppn P] [--timeout S] [FAULTS] -- PROGRAM [ARGS...]
#   scripts/multihost.sh --check      say why the harness cannot run here (exit 1), or nothing (exit 0)
#   scripts/multihost.sh --cleanup    remove what runs that died left behind (every run does this first)
#
# One run, named RUN=hpcmh-<this script's PID>, builds:
#   RUN-switch   a namespace holding only the bridge br0 (no address): the switch every host is cabled to
#   RUN-head     the login node, hostname hpcmh-head, 10.231.0.1: mpiexec runs here
#   RUN-1..N     the test hosts, hostnames hpcmh-1..N, 10.231.0.(10+i); each with its own UTS and IPC namespace
#                and its own /dev/shm (the directory /dev/shm/RUN-i bind-mounted over it)
#   /etc/netns/RUN-*/hosts   every node's name and address (`ip netns exec` mounts it over /etc/hosts)
# Each node has lo up and eth0, one end of a veth pair whose other end is a port of br0.
#
# Why mpiexec runs in a namespace of its own: hydra's proxies connect back to mpiexec's control port at the address
# of its -iface. Run from the root namespace, mpiexec would need an address on the bridge there, in the machine's
# own network stack and firewall; the harness puts addresses only inside the namespaces it makes. A head node is
# also what a cluster looks like. Why the bridge sits in a namespace too: deleting the namespaces then deletes every
# veth and the bridge, and nothing is left in the root namespace if a run dies.
#
# Teardown always runs (EXIT, and INT/TERM end the script): it kills what is still running in each namespace by
# PID (`ip netns pids`; TERM, then KILL after 3 s), deletes the namespaces (their veths and the bridge go with
# them), and removes the hosts' /dev/shm directories, naming the segments a job left there.
#
# FAULTS, for the fault tests (tests/multihost/test_faults.py):
#   --cut-after S HOST   cut the link of test host HOST (1..N, or head: mpiexec's node) S seconds after the job starts
#   --kill-after S HOST  SIGKILL one rank on test host HOST (the last its hydra proxy started) S seconds after ...
#   --when FILE          ... counting those S seconds from when FILE exists (the job makes it once it is running)
#   --strict S           fail (exit 4) when a process on a test host outlives the job by S seconds, or a job leaves
#                        segments in a test host's /dev/shm; what is left is named before teardown kills it
# The script names the moments that matter, in seconds since the job started: "multihost: cut host I's link at
# 9.1 s" (or "killed PID, a rank on host I, at"), "multihost: the job ended with status 3 at 15.2 s", and with
# --strict "multihost: host I empty at 16.0 s".
set -euo pipefail

HOSTS=2 PPN=2 TIMEOUT=600 FAULT='' FAULT_AFTER='' FAULT_HOST='' WHEN='' STRICT='' INJECTOR=''
HERE=$(cd "$(dirname "$0")" && pwd)
MPIEXEC=${MPIEXEC:-$(dirname "$HERE")/.venv/bin/mpiexec}
SUBNET=10.231.0
RUN=hpcmh-$$

die() { echo "multihost: $*" >&2; exit 2; }

# Why the harness cannot run here, or nothing.
why_not() {
    [ "$(id -u)" = 0 ] || { echo "not root (network namespaces need root)"; return; }
    command -v ip >/dev/null && command -v unshare >/dev/null || { echo "ip or unshare is missing"; return; }
    ip netns add "$RUN-probe" 2>/dev/null || { echo "ip netns does not work here"; return; }
    ip netns del "$RUN-probe"
    # the options given to mpiexec (-launcher rsh -launcher-exec) are hydra's: Open MPI's mpirun refuses them
    "$MPIEXEC" --version 2>/dev/null | grep -q HYDRA ||
        echo "$MPIEXEC is not MPICH's hydra launcher, which the harness drives (Open MPI: docs/cluster.md)"
}

# The runs whose namespaces, /dev/shm directories or hosts files exist, each once.
runs_on_machine() {
    { ip netns list | awk '{print $1}'; ls /dev/shm /etc/netns 2>/dev/null; } |
        sed -n 's/^\(hpcmh-[0-9][0-9]*\)-.*/\1/p' | sort -u
}

# Kill every process in namespace $1 by PID: TERM, then KILL what is left after 3 s.
kill_in() {
    local pids
    pids=$(ip netns pids "$1" 2>/dev/null) || return 0
    [ -n "$pids" ] || return 0
    kill -TERM $pids 2>/dev/null || true
    for _ in $(seq 30); do
        pids=$(ip netns pids "$1" 2>/dev/null)
        [ -n "$pids" ] || return 0
        sleep 0.1
    done
    echo "multihost: killing what still runs in $1: $pids" >&2
    kill -KILL $pids 2>/dev/null || true
}

# Remove every trace of run $1: processes, namespaces (with their veths and bridge), /dev/shm dirs, hosts files.
remove_run() {
    local run=$1 ns dir left
    for ns in $(ip netns list | awk -v run="$run" 'index($1, run "-") == 1 {print $1}'); do
        kill_in "$ns"
        ip netns del "$ns"
    done
    for dir in /dev/shm/"$run"-*; do
        [ -d "$dir" ] || continue
        left=$(ls -A "$dir")
        [ -z "$left" ] || echo "multihost: host ${dir##*-} left in /dev/shm: $(echo $left) (removed)" >&2
        rm -rf "$dir"
    done
    rm -rf /etc/netns/"$run"-*
}

# Remove what runs that are no longer running left (a run of this PID is a dead one: the PID was reused).
remove_stale_runs() {
    local run pid
    for run in $(runs_on_machine); do
        pid=${run#hpcmh-}
        if [ "$pid" != $$ ] && grep -qs multihost.sh "/proc/$pid/cmdline"; then
            continue
        fi
        echo "multihost: removing leftovers of $run" >&2
        remove_run "$run"
    done
}

address() { if [ "$1" = head ]; then echo "$SUBNET.1"; else echo "$SUBNET.$((10 + $1))"; fi; }

# Make namespace RUN-$1 the node hpcmh-$1 (head or 1..N), cabled to port $1 of the bridge.
add_node() {
    local ns=$RUN-$1 i
    ip netns add "$ns"
    ip link add eth0 netns "$ns" type veth peer name "port$1" netns "$RUN-switch"
    ip -n "$RUN-switch" link set "port$1" master br0 up
    ip -n "$ns" addr add "$(address "$1")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    # every node knows every name: hydra resolves the hosts it is given, and so may the job
    mkdir -p "/etc/netns/$ns"
    {
        echo "127.0.0.1 localhost"
        for i in head $(seq "$HOSTS"); do echo "$(address "$i") hpcmh-$i"; done
    } >"/etc/netns/$ns/hosts"
}

build() {
    local i
    ip netns add "$RUN-switch"
    ip -n "$RUN-switch" link add br0 type bridge
    ip -n "$RUN-switch" link set br0 up
    add_node head
    for i in $(seq "$HOSTS"); do
        add_node "$i"
        mkdir -p "/dev/shm/$RUN-$i"
    done
}

run_job() {
    local hosts
    hosts=$(seq -s, -f "hpcmh-%g" "$HOSTS")
    # The test hosts share one kernel, so UCX (MPICH's netmod) would take its shared-memory and CMA transports
    # between them and bypass the network: between hosts, TCP on eth0 only. Within a host MPICH's own shared
    # memory still serves.
    export HPCMH_RUN=$RUN UCX_TLS=tcp,self UCX_NET_DEVICES=eth0
    local cmd=(timeout --kill-after=10 "$TIMEOUT" "$MPIEXEC" -launcher rsh -launcher-exec "$HERE/multihost_rsh.sh"
        -iface eth0 -hosts "$hosts" -ppn "$PPN" -n $((HOSTS * PPN)) "$@")
    echo "multihost: $HOSTS hosts x $PPN ranks: ${cmd[*]}" >&2
    # in the background, so that INT/TERM reach the trap at once instead of after the job
    ip netns exec "$RUN-head" unshare --uts sh -c 'hostname hpcmh-head; exec "$@"' sh "${cmd[@]}" &
    local job=$! rc=0
    if [ -n "$FAULT" ]; then
        inject_fault &
        INJECTOR=$!
    fi
    wait "$job" || rc=$?
    echo "multihost: the job ended with status $rc at $(since_start) s" >&2
    stop_injector  # a job that ended before its fault
    return "$rc"
}

# Seconds since the job started, to a tenth.
since_start() { awk -v now="$EPOCHREALTIME" -v t0="$JOB_START" 'BEGIN {printf "%.1f", now - t0}'; }

# In the background: wait for --when's file (if any), then the fault's seconds; then cut FAULT_HOST's link (its
# port on the switch goes down), or SIGKILL the rank its hydra proxy started last.
inject_fault() {
    trap - EXIT INT TERM
    if [ -n "$WHEN" ]; then
        until [ -e "$WHEN" ]; do sleep 0.1; done
    fi
    sleep "$FAULT_AFTER"
    if [ "$FAULT" = cut ]; then
        ip -n "$RUN-switch" link set "port$FAULT_HOST" down
        echo "multihost: cut $(node_name "$FAULT_HOST")'s link at $(since_start) s" >&2
    else
        local rank
        rank=$(ranks_on "$FAULT_HOST" | tail -n 1)
        [ -n "$rank" ] || { echo "multihost: no rank runs on host $FAULT_HOST to kill" >&2; return; }
        kill -KILL "$rank"
        echo "multihost: killed $rank, a rank on host $FAULT_HOST, at $(since_start) s" >&2
    fi
}

stop_injector() { [ -z "$INJECTOR" ] || kill "$INJECTOR" 2>/dev/null || true; }

node_name() { if [ "$1" = head ]; then echo "the head node"; else echo "host $1"; fi; }

# The PIDs of the ranks on test host $1, oldest first: the children of its hydra proxy.
ranks_on() {
    local proxy
    for proxy in $(ip netns pids "$RUN-$1"); do
        [ "$(ps -o comm= -p "$proxy")" = hydra_pmi_proxy ] && pgrep -P "$proxy"
    done | sort -n
}

# --strict: give what runs on the test hosts $STRICT s to end on its own, then name what is still there (processes,
# /dev/shm segments) before teardown removes it. Status 4 when anything was left.
check_leftovers() {
    local i ns pids left=0 deadline=$((${EPOCHREALTIME/./} + STRICT * 1000000))  # in microseconds
    for i in $(seq "$HOSTS"); do
        ns=$RUN-$i
        while pids=$(ip netns pids "$ns" | paste -sd,) && [ -n "$pids" ]; do
            [ "${EPOCHREALTIME/./}" -lt "$deadline" ] || break
            sleep 0.1
        done
        if [ -n "$pids" ]; then
            echo "multihost: host $i still runs $STRICT s after the job:" \
                "$(ps -o pid=,args= -p "$pids" | sed 's/^ *//' | paste -sd';')" >&2
            left=1
        else
            echo "multihost: host $i empty at $(since_start) s" >&2
        fi
        if [ -n "$(ls -A "/dev/shm/$ns")" ]; then
            echo "multihost: host $i left segments in /dev/shm:" $(ls -A "/dev/shm/$ns") >&2
            left=1
        fi
    done
    return "$left"
}

main() {
    while [ $# -gt 0 ]; do
        case $1 in
            --hosts) HOSTS=$2; shift 2 ;;
            --ppn) PPN=$2; shift 2 ;;
            --timeout) TIMEOUT=$2; shift 2 ;;
            --cut-after | --kill-after) FAULT=${1#--}; FAULT=${FAULT%-after}; FAULT_AFTER=$2; FAULT_HOST=$3; shift 3 ;;
            --when) WHEN=$2; shift 2 ;;
            --strict) STRICT=$2; shift 2 ;;
            --check) local why; why=$(why_not); [ -z "$why" ] || { echo "$why"; exit 1; }; exit 0 ;;
            --cleanup) remove_stale_runs; exit 0 ;;
            --) shift; break ;;
            *) die "unknown option $1 (see the top of $0)" ;;
        esac
    done
    [ $# -gt 0 ] || die "no program given: $0 [--hosts N] [--ppn P] [--timeout S] -- PROGRAM [ARGS...]"
    [[ $HOSTS =~ ^[1-9][0-9]?$ ]] || die "--hosts must be 1..99; got $HOSTS"
    [[ $PPN =~ ^[1-9][0-9]*$ && $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--ppn and --timeout must be positive integers"
    if [ -n "$FAULT" ]; then
        [[ $FAULT_AFTER =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "--$FAULT-after takes seconds, then a host; got $FAULT_AFTER"
        [[ ($FAULT_HOST = head && $FAULT = cut) || ($FAULT_HOST =~ ^[0-9]+$ && $FAULT_HOST -ge 1 &&
            $FAULT_HOST -le $HOSTS) ]] || die "--$FAULT-after's host must be 1..$HOSTS; got $FAULT_HOST"
    fi
    [ -z "$WHEN" ] || [ -n "$FAULT" ] || die "--when needs --cut-after or --kill-after"
    [[ -z $STRICT || $STRICT =~ ^[0-9]+$ ]] || die "--strict takes whole seconds; got $STRICT"
    local why
    why=$(why_not)
    [ -z "$why" ] || die "cannot make test hosts: $why"
    remove_stale_runs
    trap 'trap "" INT TERM; stop_injector; remove_run "$RUN"' EXIT  # a second signal must not cut the teardown short
    trap 'exit 130' INT
    trap 'exit 143' TERM
    build
    local rc=0
    JOB_START=$EPOCHREALTIME
    run_job "$@" || rc=$?
    [ "$rc" != 124 ] || echo "multihost: the job ran past --timeout $TIMEOUT s and was ended" >&2
    [ -z "$STRICT" ] || check_leftovers || rc=4
    exit "$rc"
}

main "$@"
