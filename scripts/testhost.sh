# shellcheck shell=bash
# scripts/testhost.sh - test-host harness for peerd integration tests.
#
# Source it from a bash test script (do not run it):
#
#     . "$(dirname "$0")/../../scripts/testhost.sh"
#     th_trap                      # clean up on exit, Ctrl-C, TERM
#     th_setup 3 || t_bail "th_setup failed"
#     th_peerd_start 1 --some-flag
#     t_ok "peerd answers" th_wait_for 10 th_peerctl 1 status
#     t_done
#
# Needs root, iproute2 (ip), util-linux (nsenter, unshare), coreutils.
#
# MODEL
#   A "test host" hK (K = 1..N) is
#     * a network namespace  ${TH_PREFIX}K  (default pdt1, pdt2, ...), reached through a veth
#       pair: "eth0" inside, ${TH_PREFIX}vK outside, enslaved to the bridge ${TH_PREFIX}br0;
#       address ${TH_NET}.(10+K)/24, the bridge has ${TH_NET}.1/24.  No default route, no
#       forwarding, no NAT: nothing a test host sends can leave the machine.
#     * an "anchor" process (finally `sleep infinity`) started under
#       `nsenter --net=/run/netns/NS unshare --uts --mount --propagation private`.  It owns
#       the host's UTS namespace (hostname hK) and mount namespace, in which
#         /etc/hosts         <- $TH_ROOT/hK/hosts      (localhost + h1..hN; no DNS ever)
#         /etc/resolv.conf   <- $TH_ROOT/hK/resolv.conf (empty)
#         /run               <- a private tmpfs (mode 755, with /run/munge and /run/slurm)
#         /etc/slurm         <- $TH_ROOT/hK/etc-slurm
#         /etc/munge         <- $TH_ROOT/hK/etc-munge
#         /var/lib/slurm, /var/log/slurm, /var/spool/slurmd, /var/lib/munge, /var/log/munge
#                            <- $TH_ROOT/hK/var-lib-slurm, ... (each only if it exists on
#                               the machine; the source dir is named after the path)
#       The hostname is set LAST, and th_setup waits until it reads hK, so nothing runs on
#       a host before all its mounts are in place (SLURM-ON-ONE-BOX pitfall 3).
#   Commands run "on hK" through `nsenter -t ANCHOR -n -m -u`, never `ip netns exec`
#   (which remounts /sys and breaks slurmd, pitfall 2).  They keep the caller's working
#   directory (nsenter --wd) and environment, and see the root namespace's PIDs.
#
# PER-HOST FILES ($TH_ROOT/hK, see th_dir)
#   data/ (peerd's --data-dir, mode 700), log/ (peerd.out, anchor.out; put test logs here),
#   etc-slurm/, etc-munge/ (mode 700), var-*/, hosts, resolv.conf, anchor.pid, peerd.pid.
#   Files bind-mounted into a host (hosts!) must be rewritten IN PLACE (`cat new > file`,
#   see th_hosts_set); `mv`/`sed -i` replace the inode and the host keeps the old file.
#
# INVARIANTS
#   * All state lives in files under $TH_ROOT, so every function also works from a
#     subshell, e.g. pid=$(th_bg 1 "$log" cmd).
#   * Every process the harness starts is recorded as "PID STARTTIME WHAT" in $TH_ROOT/pids;
#     th_teardown kills recorded pids only if their start time still matches (no pid-reuse
#     accidents), plus every pid in one of OUR namespaces (`ip netns pids`).  Nothing is
#     ever killed by name (no pkill/killall).
#   * th_teardown is idempotent, works after a half-failed th_setup, and th_setup first
#     removes what a crashed earlier run with the same TH_PREFIX left behind.
#   * $TH_ROOT is only ever removed if it carries the marker file .peerd-testhost, which
#     th_setup writes; th_setup refuses a non-empty TH_ROOT without the marker.
#   * Harness messages go to stderr as "# th: ..."; stdout is left to the test's TAP.
#   * Background commands (th_bg) get SIGINT/SIGQUIT back to default (a non-interactive
#     bash starts `&` commands with them ignored), stdin from /dev/null, and their exit
#     status is kept (th_exit_status).
#   * set -u and set -e safe.
#
# CONFIGURATION (set before th_setup; do not change afterwards)
#   TH_PREFIX  name prefix, default pdt: namespaces pdtK, bridge pdtbr0, veths pdtvK.
#              Lower-case letters/digits, starts with a letter, does not end in a digit,
#              at most 10 characters.
#   TH_NET     first three octets of the test /24, default 10.231.0
#   TH_ROOT    per-run directory, default /tmp/peerd-th (/tmp/peerd-th-<prefix> when
#              TH_PREFIX is not the default, so two prefixes never share a directory).
#              Runs in parallel need distinct TH_PREFIX and TH_NET.
#   TH_KEEP    1: th_teardown keeps $TH_ROOT (logs); fail: keeps it only if the script is
#              failing (non-zero exit status or a failed t_ok).  Removed by the next th_setup.
#   PEERD      peerd binary, default "peerd" (PATH); PEERCTL likewise, default "peerctl".
#
# API (one line each; details above every function)
#   th_setup N                   create hosts h1..hN (cleans leftovers first)
#   th_teardown                  kill everything, delete namespaces/links/bridge, rm $TH_ROOT
#   th_trap                      teardown on EXIT; on INT/TERM teardown and exit 130/143
#   th_addr K / th_dir K / th_data K   address / per-host dir / peerd data dir of hK
#   th_ns K / th_anchor K        namespace name / anchor pid of hK
#   th_run K CMD...              run CMD on hK in the foreground, return its status
#   th_sh K 'SHELL CODE' [ARG..] run bash -c CODE on hK
#   th_bg K LOGFILE CMD...       start CMD on hK in the background, print its pid
#   th_exit_status PID           print the exit status of a th_bg command that has ended
#   th_peerd_start K [ARGS...]   start $PEERD --data-dir $(th_data K) ARGS, print pid
#   th_peerd_pid K               print the pid of hK's (last started) peerd
#   th_peerctl K ARGS...         run $PEERCTL --data-dir $(th_data K) ARGS on hK
#   th_kill K SIGNAL             send SIGNAL to hK's peerd
#   th_host_signal K SIGNAL      send SIGNAL to every process on hK but its anchor
#   th_wait_gone PID [TIMEOUT]   wait until PID has exited (default 10 s)
#   th_wait_for TIMEOUT CMD...   poll CMD every 0.2 s until it succeeds; 1 on timeout
#   th_cut K / th_heal K         take hK's link off the bridge / put it back
#   th_netem K [delay MS] [loss PCT]  delay/drop what hK sends (delay 100ms loss 10%); none: remove
#   th_hosts_set NAME [ADDR]     (re)point or (no ADDR) remove NAME in every host's /etc/hosts
#   th_bind K SRC DST            bind-mount SRC over DST inside hK (e.g. shared state dir)
#   th_dump_logs [LINES]         print the tail of every host's log/* as TAP comments
#   t_ok DESC CMD...             TAP: ok if CMD (run in a subshell) succeeds; else shows output
#   t_fails DESC CMD...          TAP: ok if CMD fails
#   t_is DESC GOT EXPECTED       TAP: ok if the two strings are equal
#   t_skip DESC REASON           TAP: ok N - DESC # SKIP REASON
#   t_diag MSG...                TAP comment line
#   t_bail MSG                   "Bail out! MSG", exit 1
#   t_done                       print the plan 1..N; return 1 if any test failed

# ----------------------------------------------------------------------------- internals

_th_log() { printf '# th: %s\n' "$*" >&2; }

# _th_init: apply defaults and validate the configuration (idempotent, cheap).
_th_init() {
    TH_PREFIX=${TH_PREFIX:-pdt}
    TH_NET=${TH_NET:-10.231.0}
    if [ -z "${TH_ROOT:-}" ]; then
        if [ "$TH_PREFIX" = pdt ]; then TH_ROOT=/tmp/peerd-th; else TH_ROOT=/tmp/peerd-th-$TH_PREFIX; fi
    fi
    PEERD=${PEERD:-peerd}
    PEERCTL=${PEERCTL:-peerctl}
    if ! [[ $TH_PREFIX =~ ^[a-z]([a-z0-9]{0,8}[a-z])?$ ]]; then
        _th_log "bad TH_PREFIX '$TH_PREFIX' (a-z0-9, starts with a letter, no trailing digit, <= 10 chars)"
        return 1
    fi
    if ! [[ $TH_NET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]]; then
        _th_log "bad TH_NET '$TH_NET' (want three octets, e.g. 10.231.0)"
        return 1
    fi
    case $TH_ROOT in
        /?*) ;;
        *) _th_log "TH_ROOT must be an absolute path other than / (got '$TH_ROOT')"; return 1 ;;
    esac
    return 0
}

# _th_k K: validate a host number (K >= 1, host exists unless $2 = nocheck).
_th_k() {
    if ! [[ ${1:-} =~ ^[1-9][0-9]*$ ]]; then
        _th_log "bad host number '${1:-}'"
        return 1
    fi
    if [ "${2:-}" != nocheck ] && [ ! -d "$TH_ROOT/h$1" ]; then
        _th_log "no test host h$1 (th_setup not run, or N < $1)"
        return 1
    fi
    return 0
}

# _th_us SECONDS: "1.5" -> 1500000 (microseconds); integers and decimals only.
_th_us() {
    local s=${1:-0} int frac
    if ! [[ $s =~ ^[0-9]*(\.[0-9]*)?$ ]] || [ -z "$s" ] || [ "$s" = . ]; then
        _th_log "bad time value '$s'"
        return 1
    fi
    int=${s%%.*}
    frac=
    [[ $s == *.* ]] && frac=${s#*.}
    frac=${frac}000000
    frac=${frac:0:6}
    printf '%s\n' $(( 10#${int:-0} * 1000000 + 10#$frac ))
}

_th_now_us() { local t=${EPOCHREALTIME/[.,]/}; printf '%s\n' $(( 10#$t )); }

# _th_starttime PID: field 22 of /proc/PID/stat (clock ticks since boot); fails if no PID.
_th_starttime() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$stat" ] || return 1
    rest=${stat##*) }                      # comm may contain spaces and ')'
    # rest starts at field 3 (state); starttime is field 22 -> 20th word of rest
    # shellcheck disable=SC2086
    set -- $rest
    [ $# -ge 20 ] || return 1
    printf '%s\n' "${20}"
}

# _th_alive PID: true while PID exists and is not a zombie.
_th_alive() {
    local stat rest
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [ -n "$stat" ] || return 1
    rest=${stat##*) }
    [ "${rest:0:1}" != Z ]
}

# _th_record PID WHAT: remember a pid for th_teardown.
_th_record() {
    local st
    st=$(_th_starttime "$1") || st=0       # already gone: 0 never matches a live process
    printf '%s %s %s\n' "$1" "$st" "$2" >> "$TH_ROOT/pids"
}

# _th_ours_ns: names of namespaces with our prefix (pdt1, pdt2, ...).
_th_ours_ns() {
    ip netns list 2>/dev/null | awk -v re="^${TH_PREFIX}[0-9]+\$" '$1 ~ re { print $1 }'
}

# _th_ours_links: our links in the root namespace (veths pdtvK and the bridge pdtbr0).
_th_ours_links() {
    ip -o link show 2>/dev/null \
        | awk -F': ' -v re="^(${TH_PREFIX}v[0-9]+|${TH_PREFIX}br0)\$" \
            '{ n = $2; sub(/@.*/, "", n); if (n ~ re) print n }'
}

# _th_live_pids: recorded pids still alive with the recorded start time, and every pid
# in one of our namespaces.  One per line, may repeat.
_th_live_pids() {
    local pid st ns
    if [ -f "$TH_ROOT/pids" ]; then
        while read -r pid st _; do
            [[ $pid =~ ^[0-9]+$ ]] || continue
            _th_alive "$pid" || continue
            [ "$(_th_starttime "$pid" 2>/dev/null)" = "$st" ] || continue
            printf '%s\n' "$pid"
        done < "$TH_ROOT/pids"
    fi
    for ns in $(_th_ours_ns); do
        ip netns pids "$ns" 2>/dev/null || true
    done
}

# _th_kill_all: TERM every live pid of ours, wait up to 10 s, then KILL; repeat a few
# times in case something spawned new processes meanwhile.  Returns 1 if pids remain.
_th_kill_all() {
    local pids p end sig
    for _ in 1 2 3; do
        mapfile -t pids < <(_th_live_pids | sort -un)
        [ ${#pids[@]} -gt 0 ] || return 0
        for sig in TERM KILL; do
            for p in "${pids[@]}"; do kill -s "$sig" "$p" 2>/dev/null || true; done
            # a stopped process (th_host_signal K STOP) only acts on TERM once continued
            [ "$sig" = KILL ] || for p in "${pids[@]}"; do kill -s CONT "$p" 2>/dev/null || true; done
            if [ "$sig" = TERM ]; then end=$(( $(_th_now_us) + 10000000 )); else end=$(( $(_th_now_us) + 5000000 )); fi
            while :; do
                local left=()
                for p in "${pids[@]}"; do _th_alive "$p" && left+=("$p"); done
                pids=("${left[@]}")
                [ ${#pids[@]} -gt 0 ] || break
                [ "$(_th_now_us)" -lt "$end" ] || break
                sleep 0.1
            done
            [ ${#pids[@]} -gt 0 ] || break
            [ "$sig" = KILL ] || _th_log "pids ${pids[*]} ignored SIGTERM for 10 s, sending SIGKILL"
        done
    done
    mapfile -t pids < <(_th_live_pids | sort -un)
    if [ ${#pids[@]} -gt 0 ]; then
        _th_log "WARNING: could not kill pids ${pids[*]}"
        return 1
    fi
    return 0
}

# _th_cleanup REMOVE_ROOT(0|1): the body of th_teardown.
_th_cleanup() {
    local remove_root=$1 ns l bad=0
    _th_kill_all || bad=1
    for ns in $(_th_ours_ns); do
        ip netns del "$ns" 2>/dev/null || { _th_log "could not delete netns $ns"; bad=1; }
    done
    for l in $(_th_ours_links); do
        ip link del "$l" 2>/dev/null || true      # a veth also goes when its peer's netns does
    done
    if [ -n "$(_th_ours_links)" ]; then _th_log "could not delete links: $(_th_ours_links | tr '\n' ' ')"; bad=1; fi
    if [ "$remove_root" = 1 ] && [ -d "$TH_ROOT" ]; then
        if [ -f "$TH_ROOT/.peerd-testhost" ]; then
            rm -rf -- "$TH_ROOT" || { _th_log "could not remove $TH_ROOT"; bad=1; }
        else
            _th_log "not removing $TH_ROOT: no .peerd-testhost marker (not made by th_setup)"
            bad=1
        fi
    fi
    return "$bad"
}

# ----------------------------------------------------------------------------- lifecycle

# th_setup N: create hosts h1..hN (1 <= N <= 244) and wait until all are ready.
# Removes leftovers of an earlier run with the same TH_PREFIX first.  Returns non-zero
# (after logging why) on failure; the caller's th_trap / th_teardown cleans up.
th_setup() {
    _th_init || return 1
    local n=${1:-}
    if ! [[ $n =~ ^[1-9][0-9]*$ ]] || [ "$n" -gt 244 ]; then
        _th_log "th_setup: want a host count 1..244, got '$n'"
        return 1
    fi
    if [ "$(id -u)" != 0 ]; then _th_log "th_setup: must run as root"; return 1; fi
    local tool
    for tool in ip nsenter unshare mount env awk; do
        command -v "$tool" >/dev/null 2>&1 || { _th_log "th_setup: '$tool' not found"; return 1; }
    done

    # leftovers of a crashed run (also a kept TH_ROOT)
    if [ -n "$(_th_ours_ns)$(_th_ours_links)" ] || [ -f "$TH_ROOT/.peerd-testhost" ]; then
        _th_log "cleaning leftovers of an earlier run (prefix $TH_PREFIX)"
        _th_cleanup 1 || { _th_log "th_setup: could not clean leftovers"; return 1; }
    fi
    if [ -e "$TH_ROOT" ] && [ -n "$(ls -A "$TH_ROOT" 2>/dev/null)" ]; then
        _th_log "th_setup: $TH_ROOT exists, is not empty and was not made by th_setup; refusing"
        return 1
    fi
    if [ ! -d /etc/slurm ] || [ ! -d /etc/munge ]; then
        _th_log "th_setup: /etc/slurm and /etc/munge must exist (install slurm and munge)"
        return 1
    fi
    mkdir -p "$TH_ROOT" && chmod 755 "$TH_ROOT" || return 1
    printf 'prefix=%s net=%s n=%s\n' "$TH_PREFIX" "$TH_NET" "$n" > "$TH_ROOT/.peerd-testhost" || return 1
    : > "$TH_ROOT/pids"
    mkdir -p "$TH_ROOT/rc"

    # optional bind targets: only those present on this machine
    local optional=(/var/lib/slurm /var/log/slurm /var/spool/slurmd /var/lib/munge /var/log/munge)
    local targets=(/etc/slurm /etc/munge) t
    for t in "${optional[@]}"; do [ -d "$t" ] && targets+=("$t"); done

    local br=${TH_PREFIX}br0
    if ! { ip link add "$br" type bridge && ip addr add "$TH_NET.1/24" dev "$br" &&
           ip link set "$br" up; }; then
        _th_log "th_setup: bridge $br could not be set up"
        return 1
    fi

    local k j ns d src args anchors=()
    for (( k = 1; k <= n; k++ )); do
        ns=$TH_PREFIX$k
        d=$TH_ROOT/h$k
        mkdir -p "$d/data" "$d/log" || { _th_log "th_setup: cannot create $d"; return 1; }
        chmod 700 "$d/data"
        # hosts file and empty resolv.conf (names from files only: no DNS query ever)
        {
            printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
            for (( j = 1; j <= n; j++ )); do printf '%s\th%s\n' "$TH_NET.$((10 + j))" "$j"; done
        } > "$d/hosts"
        printf '# peerd test host h%s: no DNS on purpose\n' "$k" > "$d/resolv.conf"
        args=()
        for t in "${targets[@]}"; do
            src=${t#/}
            src=$d/${src//\//-}                    # /var/lib/slurm -> $d/var-lib-slurm
            mkdir -p "$src" || return 1
            case $t in */munge) chmod 700 "$src" ;; esac
            args+=("$src" "$t")
        done

        if ! { ip netns add "$ns" &&
               ip link add "${TH_PREFIX}v$k" type veth peer name eth0 netns "$ns" &&
               ip link set "${TH_PREFIX}v$k" master "$br" up &&
               ip -n "$ns" link set lo up &&
               ip -n "$ns" addr add "$TH_NET.$((10 + k))/24" dev eth0 &&
               ip -n "$ns" link set eth0 up; }; then
            _th_log "th_setup: network of h$k ($ns) could not be set up"
            return 1
        fi

        # The anchor.  nsenter (no -p/-F), unshare (no -f) and `exec sleep` all exec, so
        # $! is the anchor for its whole life.  Hostname last (pitfall 3).
        # shellcheck disable=SC2016
        nsenter --net="/run/netns/$ns" unshare --uts --mount --propagation private \
            sh -c 'set -e
                d=$1; name=$2; shift 2
                mount --bind "$d/hosts" /etc/hosts
                mount --bind "$d/resolv.conf" /etc/resolv.conf
                mount -t tmpfs -o mode=755 peerd-th-run /run
                mkdir -p /run/munge /run/slurm
                while [ $# -ge 2 ]; do mount --bind "$1" "$2"; shift 2; done
                printf "%s\n" "$name" > /proc/sys/kernel/hostname
                exec sleep infinity' \
            th-anchor "$d" "h$k" "${args[@]}" \
            < /dev/null > "$d/log/anchor.out" 2>&1 &
        local apid=$!
        disown "$apid" 2>/dev/null || true
        printf '%s\n' "$apid" > "$d/anchor.pid"
        _th_record "$apid" "anchor h$k"
        anchors+=("$apid")
    done

    # wait until every anchor reports its hostname, i.e. all its mounts are done
    local end=$(( $(_th_now_us) + 10000000 )) name
    for (( k = 1; k <= n; k++ )); do
        while :; do
            name=$(nsenter -t "${anchors[k-1]}" -u -- uname -n 2>/dev/null) || name=
            [ "$name" = "h$k" ] && break
            if ! _th_alive "${anchors[k-1]}" || [ "$(_th_now_us)" -ge "$end" ]; then
                _th_log "th_setup: anchor of h$k (pid ${anchors[k-1]}) did not come up; its output:"
                sed 's/^/# th:   /' "$TH_ROOT/h$k/log/anchor.out" >&2 || true
                return 1
            fi
            sleep 0.05
        done
    done
    _th_log "$n hosts up: h1..h$n = $TH_NET.11..$TH_NET.$((10 + n)) (root $TH_ROOT)"
    return 0
}

# th_teardown: kill everything (recorded pids + pids in our namespaces; TERM, 10 s, KILL),
# delete namespaces, veths and bridge, remove $TH_ROOT (see TH_KEEP).  Idempotent; quiet
# when there is nothing to do.  Returns 0 if everything is gone, 1 if something could not
# be removed (logged).  From an EXIT trap it does not change the script's exit status
# (bash keeps the status the script exited with), and TH_KEEP=fail looks at that status.
th_teardown() {
    local rc=$? keep ours
    _th_init || return 1
    keep=${TH_KEEP:-0}
    case $keep in
        1) keep=1 ;;
        fail) if [ "$rc" != 0 ] || [ "${_TH_T_FAILED:-0}" != 0 ]; then keep=1; else keep=0; fi ;;
        *) keep=0 ;;
    esac
    ours=$(_th_ours_ns)$(_th_ours_links)
    if [ -z "$ours" ] && [ ! -d "$TH_ROOT" ]; then
        return 0
    fi
    if [ "$keep" = 1 ]; then
        _th_cleanup 0 || return 1
        if [ -n "$ours" ] && [ -d "$TH_ROOT" ]; then _th_log "kept $TH_ROOT (TH_KEEP=${TH_KEEP:-})"; fi
        return 0
    fi
    _th_cleanup 1
}

# th_trap: install the cleanup traps.  EXIT runs th_teardown (the script's exit status is
# kept); INT and TERM run th_teardown and then exit with 130 / 143 (a plain
# `trap th_teardown INT` would let the script carry on after Ctrl-C).  Replaces any
# EXIT/INT/TERM traps the script had.
th_trap() {
    _th_init || return 1
    trap th_teardown EXIT
    trap '_th_on_signal INT 130' INT
    trap '_th_on_signal TERM 143' TERM
}

_th_on_signal() {
    trap - EXIT INT TERM
    _th_log "caught SIG$1, cleaning up"
    [ -n "${_TH_T_TMP:-}" ] && rm -f "$_TH_T_TMP"
    th_teardown || true
    exit "$2"
}

# ----------------------------------------------------------------------------- host info

th_addr() { _th_init && _th_k "${1:-}" nocheck && printf '%s\n' "$TH_NET.$((10 + $1))"; }
th_dir()  { _th_init && _th_k "${1:-}" nocheck && printf '%s\n' "$TH_ROOT/h$1"; }
th_data() { _th_init && _th_k "${1:-}" nocheck && printf '%s\n' "$TH_ROOT/h$1/data"; }
th_ns()   { _th_init && _th_k "${1:-}" nocheck && printf '%s\n' "$TH_PREFIX$1"; }

# th_anchor K: pid of hK's anchor process (fails if it is gone).
th_anchor() {
    _th_init && _th_k "${1:-}" || return 1
    local p
    p=$(cat "$TH_ROOT/h$1/anchor.pid" 2>/dev/null) || { _th_log "h$1 has no anchor"; return 1; }
    _th_alive "$p" || { _th_log "anchor of h$1 (pid $p) is gone"; return 1; }
    printf '%s\n' "$p"
}

# ----------------------------------------------------------------------------- running

# _th_wd: nsenter option keeping the caller's working directory (opened in the root
# namespace, so it works even if the path is hidden inside the host).
_th_wd() {
    if [ -d "$PWD" ]; then printf '%s\n' "--wd=$PWD"; else printf '%s\n' "--wd=/"; fi
}

# th_run K CMD [ARGS...]: run CMD on hK in the foreground; returns CMD's exit status
# (nsenter's own errors return 1 with a message on stderr).
th_run() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1 a
    shift
    [ $# -gt 0 ] || { _th_log "th_run: no command"; return 1; }
    a=$(th_anchor "$k") || return 1
    nsenter -t "$a" -n -m -u "$(_th_wd)" -- "$@"
}

# th_sh K 'SHELL CODE' [ARGS...]: run `bash -c CODE th_sh ARGS...` on hK (bash, so
# /dev/tcp works); ARGS are $1.. inside CODE.
th_sh() {
    local k=${1:-}
    [ $# -ge 2 ] || { _th_log "th_sh: usage: th_sh K 'code' [args]"; return 1; }
    local code=$2
    shift 2
    th_run "$k" bash -c "$code" th_sh "$@"
}

# th_bg K LOGFILE CMD [ARGS...]: start CMD on hK in the background, stdout+stderr to
# LOGFILE (truncated), stdin /dev/null, SIGINT/SIGQUIT at default.  Prints CMD's pid (the
# command itself: nsenter and env exec).  A small watcher subshell in the root namespace
# waits for it and stores its exit status for th_exit_status (128+N if killed by signal N).
# Both pids are recorded for th_teardown.
th_bg() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1 log=${2:-} a tag pid i
    shift 2 || true
    if [ -z "$log" ] || [ $# -eq 0 ]; then _th_log "th_bg: usage: th_bg K LOGFILE CMD..."; return 1; fi
    a=$(th_anchor "$k") || return 1
    : > "$log" || { _th_log "th_bg: cannot write $log"; return 1; }
    tag=$TH_ROOT/rc/start.$BASHPID.$RANDOM$RANDOM
    local wd
    wd=$(_th_wd)
    (
        trap - EXIT INT TERM
        set +e                                 # the caller may run with set -e
        env --default-signal=INT,QUIT nsenter -t "$a" -n -m -u "$wd" -- "$@" \
            < /dev/null > "$log" 2>&1 &
        p=$!
        printf '%s\n' "$p" > "$tag.tmp" && mv -f "$tag.tmp" "$tag"
        wait "$p"
        s=$?
        printf '%s\n' "$s" > "$TH_ROOT/rc/$p.tmp" && mv -f "$TH_ROOT/rc/$p.tmp" "$TH_ROOT/rc/$p"
    ) < /dev/null > /dev/null 2>&1 &
    local wpid=$!
    disown "$wpid" 2>/dev/null || true
    _th_record "$wpid" "watcher h$k"
    for (( i = 0; i < 500; i++ )); do
        [ -s "$tag" ] && break
        sleep 0.01
    done
    pid=$(cat "$tag" 2>/dev/null) || pid=
    rm -f "$tag"
    if [ -z "$pid" ]; then _th_log "th_bg: could not start '$*' on h$k"; return 1; fi
    _th_record "$pid" "h$k: $*"
    printf '%s\n' "$pid"
}

# th_exit_status PID: print the exit status of a command started with th_bg once it has
# ended (waits up to 2 s for the watcher to store it); fails if unknown or still running.
th_exit_status() {
    _th_init || return 1
    local p=${1:-} i
    [[ $p =~ ^[0-9]+$ ]] || { _th_log "th_exit_status: bad pid '$p'"; return 1; }
    for (( i = 0; i < 20; i++ )); do
        if [ -f "$TH_ROOT/rc/$p" ]; then cat "$TH_ROOT/rc/$p"; return 0; fi
        _th_alive "$p" && { _th_log "th_exit_status: pid $p is still running"; return 1; }
        sleep 0.1
    done
    _th_log "th_exit_status: no exit status for pid $p (not started by th_bg?)"
    return 1
}

# th_wait_gone PID [TIMEOUT=10]: wait until PID has exited (zombies count as exited).
th_wait_gone() {
    local p=${1:-}
    [[ $p =~ ^[0-9]+$ ]] || { _th_log "th_wait_gone: bad pid '$p'"; return 1; }
    th_wait_for "${2:-10}" _th_not_alive "$p"
}
_th_not_alive() { ! _th_alive "$1"; }

# th_wait_for TIMEOUT CMD [ARGS...]: run CMD (output discarded) every 0.2 s until it
# succeeds (return 0) or TIMEOUT seconds (decimals allowed) have passed (return 1).
# CMD runs in the current shell, so it may be a function.
th_wait_for() {
    local us end
    us=$(_th_us "${1:-}") || return 2
    shift
    [ $# -gt 0 ] || { _th_log "th_wait_for: no command"; return 2; }
    end=$(( $(_th_now_us) + us ))
    while :; do
        "$@" > /dev/null 2>&1 && return 0
        [ "$(_th_now_us)" -lt "$end" ] || return 1
        sleep 0.2
    done
}

# ----------------------------------------------------------------------------- peerd

# th_peerd_start K [ARGS...]: start `$PEERD --data-dir $(th_data K) ARGS` on hK, output to
# $(th_dir K)/log/peerd.out (an earlier run's file is kept as peerd.out.1, .2, ... in start
# order), pid to $(th_dir K)/peerd.pid.  Prints the pid.
th_peerd_start() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1 d out i pid
    shift
    d=$TH_ROOT/h$k
    out=$d/log/peerd.out
    if [ -e "$out" ]; then
        i=1
        while [ -e "$out.$i" ]; do i=$((i + 1)); done
        mv -f "$out" "$out.$i"
    fi
    pid=$(th_bg "$k" "$out" "$PEERD" --data-dir "$d/data" "$@") || return 1
    printf '%s\n' "$pid" > "$d/peerd.pid"
    printf '%s\n' "$pid"
}

# th_peerd_pid K: pid of the last peerd started on hK (it may have exited since).
th_peerd_pid() {
    _th_init && _th_k "${1:-}" || return 1
    cat "$TH_ROOT/h$1/peerd.pid" 2>/dev/null || { _th_log "no peerd started on h$1"; return 1; }
}

# th_peerctl K ARGS...: run `$PEERCTL --data-dir $(th_data K) ARGS` on hK (foreground).
th_peerctl() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1
    shift
    th_run "$k" "$PEERCTL" --data-dir "$TH_ROOT/h$k/data" "$@"
}

# th_kill K SIGNAL: send SIGNAL (TERM, KILL, 9, STOP, ...) to hK's peerd.  Refuses if that
# pid is no longer a process in hK's network namespace (exited, or pid reused).
th_kill() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1 sig=${2:-} pid want have
    [ -n "$sig" ] || { _th_log "th_kill: usage: th_kill K SIGNAL"; return 1; }
    pid=$(th_peerd_pid "$k") || return 1
    want=$(stat -L -c %i "/run/netns/$TH_PREFIX$k" 2>/dev/null) || want=x
    have=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || have=
    if [ "$have" != "net:[$want]" ]; then
        _th_log "th_kill: peerd of h$k (pid $pid) is not running"
        return 1
    fi
    kill -s "${sig#SIG}" "$pid"
}

# th_host_signal K SIGNAL: send SIGNAL to every process on hK (in its network namespace)
# except the anchor, so the host stays usable: KILL = the host crashes, STOP / CONT =
# it freezes / thaws (a frozen host keeps its link; combine with th_cut for "dead").
# Processes started on hK from now on are not affected.
th_host_signal() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1 sig=${2:-} a p rc=0
    [ -n "$sig" ] || { _th_log "th_host_signal: usage: th_host_signal K SIGNAL"; return 1; }
    a=$(th_anchor "$k") || return 1
    for p in $(ip netns pids "$TH_PREFIX$k"); do
        [ "$p" = "$a" ] && continue
        if ! kill -s "${sig#SIG}" "$p" 2>/dev/null && _th_alive "$p"; then rc=1; fi
    done
    return "$rc"
}

# ----------------------------------------------------------------------------- network

# th_cut K: set hK's bridge-side veth down: hK can reach nobody, nobody reaches hK.
th_cut() {
    _th_init && _th_k "${1:-}" || return 1
    ip link set "${TH_PREFIX}v$1" down
}

# th_heal K: undo th_cut.
th_heal() {
    _th_init && _th_k "${1:-}" || return 1
    ip link set "${TH_PREFIX}v$1" up
}

# th_netem K [delay MS[ms]] [loss PCT[%]]: shape what hK sends on eth0 the way
# `tc qdisc add dev eth0 root netem delay MSms loss PCT%` would, without sch_netem (which
# the CI kernel lacks): an iptables rule on hK sends eth0's outgoing IPv4 packets to
# NFQUEUE K, and $NETDELAY (default $(dirname "$PEERD")/tests/netdelay), started on hK
# with th_bg, drops each with probability PCT % and lets the others go MS ms after they
# were sent, in order.  --queue-bypass: packets pass unshaped if the delayer is gone.
# Shaping two hosts adds up as with netem (h1 and h2 at 100 ms: +200 ms RTT between them).
# Without arguments: delete the rule, stop the delayer (what it holds is sent) and log its
# counters.  A new call replaces the shaping.  Pid in $(th_dir K)/netdelay.pid, output in
# log/netdelay.out.  Needs iptables and tests/netdelay (libnetfilter-queue-dev).
th_netem() {
    _th_init && _th_k "${1:-}" || return 1
    local k=$1 d=$TH_ROOT/h$1 ms=0 pct=0 frac nd pid want have st stop_only=0
    local rule=(OUTPUT -o eth0 -j NFQUEUE --queue-num "$1" --queue-bypass)
    shift
    [ $# -gt 0 ] || stop_only=1
    nd=${NETDELAY:-$(dirname "$PEERD")/tests/netdelay}
    while [ $# -gt 0 ]; do
        case $1 in
            delay) [[ ${2:-} =~ ^([0-9]{1,6})(ms)?$ ]] ||
                       { _th_log "th_netem: bad delay '${2:-}' (want MSms)"; return 1; }
                   ms=$((10#${BASH_REMATCH[1]})) ;;
            loss)  [[ ${2:-} =~ ^([0-9]{1,3}(\.[0-9]+)?)%?$ ]] ||
                       { _th_log "th_netem: bad loss '${2:-}' (want PCT%)"; return 1; }
                   pct=${BASH_REMATCH[1]} ;;
            *) _th_log "th_netem: '$1' not supported (only delay MSms, loss PCT%)"; return 1 ;;
        esac
        shift 2
    done
    frac=$(awk -v p="$pct" 'BEGIN { if (p > 100) exit 1; printf "%.6f\n", p / 100 }') ||
        { _th_log "th_netem: loss $pct% is above 100%"; return 1; }

    # stop: the rule first, so nothing new is queued; then the delayer sends what it holds
    while th_run "$k" iptables -w -D "${rule[@]}" 2>/dev/null; do :; done
    if [ -f "$d/netdelay.pid" ]; then
        pid=$(cat "$d/netdelay.pid")
        rm -f "$d/netdelay.pid"
        want=$(stat -L -c %i "/run/netns/$TH_PREFIX$k" 2>/dev/null) || want=x
        have=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || have=
        if [ "$have" = "net:[$want]" ] && _th_alive "$pid"; then
            kill -TERM "$pid" 2>/dev/null || true
            th_wait_gone "$pid" 5 || { _th_log "th_netem: delayer of h$k (pid $pid) ignored SIGTERM"; return 1; }
        fi
        st=$(th_exit_status "$pid" 2>/dev/null) || st=unknown
        _th_log "h$k $(tail -n 1 "$d/log/netdelay.out" 2>/dev/null) (exit status $st)"
        [ "$st" = 0 ] || { _th_log "th_netem: delayer of h$k failed, see $d/log/netdelay.out"; return 1; }
    fi
    [ "$stop_only" = 0 ] || return 0

    [ -x "$nd" ] || { _th_log "th_netem: no $nd (set NETDELAY; build needs libnetfilter-queue-dev)"; return 1; }
    command -v iptables > /dev/null 2>&1 || { _th_log "th_netem: iptables not found"; return 1; }
    pid=$(th_bg "$k" "$d/log/netdelay.out" "$nd" "$k" "$ms" "$frac") || return 1
    printf '%s\n' "$pid" > "$d/netdelay.pid"
    if ! th_wait_for 5 grep -q '^netdelay: queue [0-9]* bound' "$d/log/netdelay.out"; then
        _th_log "th_netem: the delayer of h$k did not bind its queue:"
        sed 's/^/# th:   /' "$d/log/netdelay.out" >&2
        th_netem "$k" || true
        return 1
    fi
    if ! th_run "$k" iptables -w -A "${rule[@]}"; then
        _th_log "th_netem: could not add the NFQUEUE rule on h$k"
        th_netem "$k" || true
        return 1
    fi
}

# th_hosts_set NAME [ADDR]: point NAME at ADDR in every host's /etc/hosts (rewritten in
# place, so running hosts see it at once); without ADDR remove NAME.
th_hosts_set() {
    _th_init || return 1
    local name=${1:-} addr=${2:-} f new
    [ -n "$name" ] || { _th_log "th_hosts_set: usage: th_hosts_set NAME [ADDR]"; return 1; }
    for f in "$TH_ROOT"/h*/hosts; do
        [ -f "$f" ] || continue
        new=$(awk -v n="$name" '{ for (i = 2; i <= NF; i++) if ($i == n) next; print }' "$f") || return 1
        [ -n "$addr" ] && new=$new$'\n'$addr$'\t'$name
        printf '%s\n' "$new" > "$f" || return 1
    done
}

# th_bind K SRC DST: bind-mount SRC (a root-namespace path) over DST inside hK, creating
# DST there if missing.  Create DST only below a per-host mount (/etc/slurm, /var/lib/slurm,
# /run, ...): a mkdir elsewhere would change the machine's shared file system.
th_bind() {
    _th_init && _th_k "${1:-}" || return 1
    local a
    [ $# -eq 3 ] || { _th_log "th_bind: usage: th_bind K SRC DST"; return 1; }
    a=$(th_anchor "$1") || return 1
    # shellcheck disable=SC2016
    nsenter -t "$a" -m -- sh -c 'mkdir -p "$2" && mount --bind "$1" "$2"' th_bind "$2" "$3"
}

# th_dump_logs [LINES=30]: last LINES lines of every $TH_ROOT/h*/log/* file, as TAP comments.
th_dump_logs() {
    _th_init || return 1
    local n=${1:-30} f
    for f in "$TH_ROOT"/h*/log/*; do
        [ -f "$f" ] || continue
        printf '# ---- %s (last %s lines)\n' "$f" "$n"
        tail -n "$n" "$f" | sed 's/^/#   /'
    done
}

# ----------------------------------------------------------------------------- TAP

_TH_T_N=0
_TH_T_FAILED=0
_TH_T_TMP=
_TH_T_RC=0

# _th_t_run CMD...: run CMD in a subshell, output to a fresh temp file (named in
# _TH_T_TMP, removed by the caller or by _th_on_signal); sets _TH_T_RC.  A subshell, so
# CMD cannot change the test's variables and an `exit` in CMD only ends CMD; a temp file
# rather than $(...), so a daemon that keeps stdout open cannot hang the test; and the
# caller's own stderr stays in place, so the signal traps can still report.
_th_t_run() {
    _TH_T_TMP=$(mktemp "${TMPDIR:-/tmp}/th-tap.XXXXXX") || { _TH_T_TMP=; _TH_T_RC=127; return 0; }
    if [ $# -eq 0 ]; then _TH_T_RC=127; return 0; fi
    if ( "$@" ) > "$_TH_T_TMP" 2>&1; then _TH_T_RC=0; else _TH_T_RC=$?; fi
    return 0
}

# _th_t_result OK(0|1) DESC HEADER: print the TAP line (and on failure HEADER plus the
# last 40 lines of the command's output), count, remove the temp file.
_th_t_result() {
    _TH_T_N=$((_TH_T_N + 1))
    if [ "$1" = 1 ]; then
        printf 'ok %d - %s\n' "$_TH_T_N" "$2"
    else
        _TH_T_FAILED=$((_TH_T_FAILED + 1))
        printf 'not ok %d - %s\n' "$_TH_T_N" "$2"
        printf '#   %s\n' "$3"
        [ -n "$_TH_T_TMP" ] && tail -n 40 "$_TH_T_TMP" | sed 's/^/#   | /'
    fi
    [ -n "$_TH_T_TMP" ] && rm -f "$_TH_T_TMP"
    _TH_T_TMP=
    return 0
}

# t_ok DESC CMD [ARGS...]: "ok N - DESC" if CMD exits 0, else "not ok N - DESC" followed
# by the command, its exit status and the tail of its output (stdout+stderr) as "# " lines.
# CMD runs in a subshell (see _th_t_run): it may be a function, but cannot set variables.
t_ok() {
    local desc=${1:-}
    shift || true
    _th_t_run "$@"
    if [ "$_TH_T_RC" = 0 ]; then
        _th_t_result 1 "$desc" ""
    else
        _th_t_result 0 "$desc" "command: $* -> exit status $_TH_T_RC"
    fi
}

# t_fails DESC CMD [ARGS...]: like t_ok, but ok when CMD exits non-zero.
t_fails() {
    local desc=${1:-}
    shift || true
    _th_t_run "$@"
    if [ "$_TH_T_RC" != 0 ] && [ $# -gt 0 ]; then
        _th_t_result 1 "$desc" ""
    else
        _th_t_result 0 "$desc" "command (should have failed): $* -> exit status $_TH_T_RC"
    fi
}

# t_is DESC GOT EXPECTED: ok if the strings are equal, else shows both.
t_is() {
    _TH_T_N=$((_TH_T_N + 1))
    if [ "${2-}" = "${3-}" ]; then
        printf 'ok %d - %s\n' "$_TH_T_N" "${1:-}"
    else
        _TH_T_FAILED=$((_TH_T_FAILED + 1))
        printf 'not ok %d - %s\n' "$_TH_T_N" "${1:-}"
        printf '#   got:      %s\n' "${2-}" | sed '2,$s/^/#   | /'
        printf '#   expected: %s\n' "${3-}" | sed '2,$s/^/#   | /'
    fi
    return 0
}

# t_skip DESC REASON: a skipped test (counts as passed).
t_skip() {
    _TH_T_N=$((_TH_T_N + 1))
    printf 'ok %d - %s # SKIP %s\n' "$_TH_T_N" "${1:-}" "${2:-}"
}

# t_diag MSG...: a TAP comment on stdout.
t_diag() { printf '# %s\n' "$*"; }

# t_bail MSG: abort the whole test script ("Bail out!"); the EXIT trap still cleans up.
t_bail() {
    printf 'Bail out! %s\n' "$*"
    exit 1
}

# t_done: print the plan; return 1 if any test failed (use as the script's last command).
t_done() {
    printf '1..%d\n' "$_TH_T_N"
    if [ "$_TH_T_FAILED" != 0 ]; then
        printf '# %d of %d tests failed\n' "$_TH_T_FAILED" "$_TH_T_N"
        return 1
    fi
    return 0
}
