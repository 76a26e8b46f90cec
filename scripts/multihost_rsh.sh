#!/bin/sh
# hydra's "rsh" for the test hosts of scripts/multihost.sh: run a command on one of them.
#
#   multihost_rsh.sh HOST WORD...     (mpiexec -launcher rsh -launcher-exec THIS, with HPCMH_RUN set)
#
# Like rsh, it joins the WORDs into one shell command (hydra quotes them for a remote shell). HOST hpcmh-I runs it
# in namespace $HPCMH_RUN-I under the hostname hpcmh-I, with an IPC namespace and a /dev/shm of its own. A command
# that is a list (Open MPI's "VAR=...;export VAR;... prted ...") runs as one; a single command replaces the shell.
set -eu
host=$1
shift
ns=$HPCMH_RUN-${host#hpcmh-}
[ -d "/dev/shm/$ns" ] || { echo "multihost_rsh: no test host $host in run $HPCMH_RUN" >&2; exit 255; }
exec ip netns exec "$ns" unshare --uts --ipc sh -c \
    'hostname "$1" && mount --bind "$2" /dev/shm && shift 2 && case "$*" in *";"*) eval "$*" ;; *) eval "exec $*" ;; esac' \
    sh "$host" "/dev/shm/$ns" "$@"
