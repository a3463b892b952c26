#!/bin/bash
# t00-harness.sh - self-test of scripts/testhost.sh (the test-host harness).  TAP on stdout.
# Needs root (prints "1..0 # SKIP" otherwise).  Honours TH_PREFIX / TH_NET / TH_ROOT / TH_KEEP.
# Takes about 8 s.
# shellcheck source-path=SCRIPTDIR disable=SC2016,SC2034  # '...' code runs on the hosts; PEERD/PEERCTL are read by testhost.sh
set -u

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/testhost.sh
. "$here/../../scripts/testhost.sh"

if [ "$(id -u)" != 0 ]; then
    echo "1..0 # SKIP needs root (network namespaces)"
    exit 0
fi

orig_hostname=$(uname -n)
th_trap
th_setup 3 || t_bail "th_setup 3 failed"

# tcp_get K ADDR PORT: from hK, connect to ADDR:PORT, send an HTTP/1.0 request and expect
# a 200 status line; at most 3 s.
tcp_get() {
    th_run "$1" timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET / HTTP/1.0\r\n\r\n" >&3
        IFS= read -r line <&3
        case $line in "HTTP/1."?" 200"*) exit 0 ;; *) echo "got: $line"; exit 1 ;; esac' "$2" "$3"
}

# in_netns PID K: PID is a process in hK's network namespace
in_netns() {
    [ "$(readlink "/proc/$1/ns/net")" = "net:[$(stat -L -c %i "/run/netns/$(th_ns "$2")")]" ]
}

# ---------------------------------------------------------------- identity and names
for k in 1 2 3; do
    t_is "h$k: hostname is h$k" "$(th_run "$k" uname -n)" "h$k"
done
t_is "root namespace hostname unchanged" "$(uname -n)" "$orig_hostname"
t_is "th_addr 2" "$(th_addr 2)" "$TH_NET.12"
t_is "th_dir / th_data 2" "$(th_dir 2) $(th_data 2)" "$TH_ROOT/h2 $TH_ROOT/h2/data"
t_ok "data, log, etc-slurm, etc-munge dirs exist" \
    test -d "$(th_data 1)" -a -d "$(th_dir 1)/log" -a -d "$(th_dir 1)/etc-slurm" -a -d "$(th_dir 1)/etc-munge"
t_is "h1 resolves h3 from its hosts file" "$(th_run 1 getent hosts h3 | awk '{ print $1 }')" "$(th_addr 3)"
t_ok "h1: empty resolv.conf" th_sh 1 '! grep -q "^nameserver" /etc/resolv.conf'
t_ok "h1: only the test /24, no default route" \
    th_sh 1 '[ -z "$(ip route show default)" ] && ip route show | grep -q "dev eth0"'
t_is "th_run returns the command's exit status" "$(th_run 1 sh -c 'exit 3'; echo $?)" 3
t_is "th_run keeps the working directory" "$(cd "$here" && th_run 1 pwd)" "$here"
t_is "th_sh passes arguments" "$(th_sh 2 'echo "$1-$2@$(uname -n)"' a b)" "a-b@h2"

# ---------------------------------------------------------------- network
web=$(th_bg 2 "$(th_dir 2)/log/http.out" /usr/bin/python3 -m http.server --bind "$(th_addr 2)" 8080)
th_bg 2 "$(th_dir 2)/log/http-lo.out" /usr/bin/python3 -m http.server --bind 127.0.0.1 8081 > /dev/null
t_ok "th_bg pid is the command itself, inside h2's netns" in_netns "$web" 2
t_ok "h1 reaches h2 over TCP" th_wait_for 10 tcp_get 1 "$(th_addr 2)" 8080
t_ok "h3 reaches h2 over TCP (by name h2)" tcp_get 3 h2 8080
t_ok "h2 reaches its own loopback listener" th_wait_for 10 tcp_get 2 127.0.0.1 8081
t_fails "h1's loopback is not h2's" tcp_get 1 127.0.0.1 8081
th_cut 2
t_fails "th_cut 2: h1 cannot reach h2" tcp_get 1 "$(th_addr 2)" 8080
th_heal 2
t_ok "th_heal 2: h1 reaches h2 again" th_wait_for 10 tcp_get 1 "$(th_addr 2)" 8080

# ---------------------------------------------------------------- per-host mounts
marker="marker-$$-$RANDOM"
echo "$marker" > "$(th_dir 1)/etc-slurm/th-marker"
t_is "h1's /etc/slurm is \$(th_dir 1)/etc-slurm" "$(th_run 1 cat /etc/slurm/th-marker)" "$marker"
t_fails "h2 does not see h1's /etc/slurm file" th_run 2 test -e /etc/slurm/th-marker
t_fails "root namespace does not see it" test -e /etc/slurm/th-marker
th_run 2 sh -c 'echo inside > /etc/munge/th-marker'
t_is "a file written to /etc/munge on h2 lands in \$(th_dir 2)/etc-munge" \
    "$(cat "$(th_dir 2)/etc-munge/th-marker" 2>&1)" inside
t_fails "... and not in the root namespace" test -e /etc/munge/th-marker
if [ -d /var/lib/slurm ]; then
    th_run 3 sh -c 'echo x > /var/lib/slurm/th-marker'
    t_ok "/var/lib/slurm on h3 is \$(th_dir 3)/var-lib-slurm" test -f "$(th_dir 3)/var-lib-slurm/th-marker"
    t_fails "... and not the machine's" test -e /var/lib/slurm/th-marker
else
    t_skip "/var/lib/slurm per host" "/var/lib/slurm does not exist"
    t_skip "/var/lib/slurm per host" "/var/lib/slurm does not exist"
fi
t_is "h1's /run is a tmpfs" "$(th_run 1 findmnt -n -o FSTYPE /run)" tmpfs
th_run 1 touch /run/th-marker
t_ok "h1 sees its /run file" th_run 1 test -f /run/th-marker
t_fails "h2 does not see h1's /run file" th_run 2 test -e /run/th-marker
t_fails "root namespace does not see it" test -e /run/th-marker
t_ok "/run/munge and /run/slurm exist on h1" th_run 1 test -d /run/munge -a -d /run/slurm

th_hosts_set ctl "$(th_addr 2)"
t_is "th_hosts_set: h1 resolves ctl to h2" "$(th_run 1 getent hosts ctl | awk '{ print $1 }')" "$(th_addr 2)"
th_hosts_set ctl "$(th_addr 3)"
t_is "th_hosts_set again: running h1 sees ctl = h3" "$(th_run 1 getent hosts ctl | awk '{ print $1 }')" "$(th_addr 3)"
th_hosts_set ctl
t_fails "th_hosts_set without address removes ctl" th_run 1 getent hosts ctl
t_is "... and keeps the other names" "$(th_run 1 getent hosts h2 | awk '{ print $1 }')" "$(th_addr 2)"

mkdir -p "$TH_ROOT/shared"
th_bind 1 "$TH_ROOT/shared" /var/lib/slurm/slurmctld
th_bind 2 "$TH_ROOT/shared" /var/lib/slurm/slurmctld
th_run 1 sh -c 'echo from-h1 > /var/lib/slurm/slurmctld/f'
t_is "th_bind: h2 sees the file h1 wrote in the shared dir" "$(th_run 2 cat /var/lib/slurm/slurmctld/f)" from-h1
t_fails "... h3 does not" th_run 3 test -e /var/lib/slurm/slurmctld/f

# ---------------------------------------------------------------- processes
sl=$(th_bg 3 "$(th_dir 3)/log/sleep.out" sleep 300)
t_ok "background sleep runs in h3's netns" in_netns "$sl" 3
kill -INT "$sl"
t_ok "SIGINT is not ignored by th_bg commands" th_wait_gone "$sl" 5
t_is "th_exit_status after SIGINT" "$(th_exit_status "$sl")" 130

fake=$TH_ROOT/fake-peerd
cat > "$fake" <<'EOF'
#!/bin/bash
echo "fake peerd on $(uname -n) args: $*"
trap 'echo "got TERM"; kill $!; exit 7' TERM
sleep 300 &
wait $!
EOF
chmod 755 "$fake"
PEERD=$fake
pp=$(th_peerd_start 1 --foo 'bar baz')
t_is "th_peerd_pid" "$(th_peerd_pid 1)" "$pp"
t_ok "th_peerd_start passes --data-dir and the args, output in log/peerd.out" \
    th_wait_for 5 grep -qxF "fake peerd on h1 args: --data-dir $(th_data 1) --foo bar baz" "$(th_dir 1)/log/peerd.out"
t_ok "th_kill 1 TERM" th_kill 1 TERM
t_ok "th_wait_gone: peerd exits" th_wait_gone "$pp" 5
t_is "exit status of the fake peerd after TERM" "$(th_exit_status "$pp")" 7
t_ok "its output says why" grep -qx "got TERM" "$(th_dir 1)/log/peerd.out"
t_fails "th_kill refuses an exited peerd" th_kill 1 TERM
pp2=$(th_peerd_start 1)
t_ok "restart keeps the previous output as peerd.out.1" grep -qx "got TERM" "$(th_dir 1)/log/peerd.out.1"
th_wait_for 5 grep -q "fake peerd" "$(th_dir 1)/log/peerd.out"
t_ok "th_kill 1 9" th_kill 1 9
t_ok "th_wait_gone after KILL" th_wait_gone "$pp2" 5
t_is "exit status after KILL" "$(th_exit_status "$pp2")" 137
t_fails "th_wait_gone times out on a live pid" th_wait_gone "$web" 0.5
PEERCTL="echo"
t_is "th_peerctl" "$(th_peerctl 2 status -v)" "--data-dir $(th_data 2) status -v"

th_host_signal 2 STOP
t_fails "th_host_signal 2 STOP: h2's web server does not answer" tcp_get 1 "$(th_addr 2)" 8080
th_host_signal 2 CONT
t_ok "th_host_signal 2 CONT: it answers again" tcp_get 1 "$(th_addr 2)" 8080
sl3=$(th_bg 3 "$(th_dir 3)/log/sleep3.out" sleep 300)
th_host_signal 3 KILL
t_ok "th_host_signal 3 KILL: h3's processes die" th_wait_gone "$sl3" 5
t_ok "... but h3 stays usable" th_run 3 true
sl1=$(th_bg 1 "$(th_dir 1)/log/sleep1.out" sleep 300)
th_host_signal 1 STOP           # th_teardown must not wait 10 s for a stopped process

# ---------------------------------------------------------------- teardown
prefix=$TH_PREFIX root=$TH_ROOT
recorded=$(cat "$TH_ROOT/pids")
ns_pids=$(for k in 1 2 3; do ip netns pids "$(th_ns "$k")"; done)
t0=$SECONDS
t_ok "th_teardown" th_teardown
t_ok "th_teardown took < 5 s (a stopped process was continued)" test $((SECONDS - t0)) -lt 5
t_is "no namespace ${prefix}N left" "$(ip netns list | awk -v re="^${prefix}[0-9]+\$" '$1 ~ re')" ""
t_fails "bridge ${prefix}br0 gone" ip link show "${prefix}br0"
t_is "no veth ${prefix}vN left" "$(ip -o link show | grep -E ": ${prefix}v[0-9]+@" || true)" ""
# still_alive: print and succeed if a recorded pid (same start time) or a pid that was in
# our namespaces still runs.  Zombies count as gone: they wait for their parent (often PID 1
# here, since th_bg's watcher is usually started from a $(...) subshell) to reap them.
still_alive() {
    local pid st stat f rc=1
    while read -r pid st _; do
        [ -n "$pid" ] || continue
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<< "${stat##*) }"
        if [ "${f[19]}" = "$st" ] && [ "${f[0]}" != Z ]; then echo "alive: $pid ($stat)"; rc=0; fi
    done <<< "$recorded"
    for pid in $ns_pids; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        read -r -a f <<< "${stat##*) }"
        if [ "${f[0]}" != Z ]; then echo "alive: $pid ($stat)"; rc=0; fi
    done
    return "$rc"
}
t_is "number of recorded pids (3 anchors + 7 th_bg commands + their watchers)" \
    "$(printf '%s\n' "$recorded" | wc -l)" 17
t_fails "no recorded pid and no pid of our namespaces is alive" still_alive
if [ "${TH_KEEP:-0}" = 1 ]; then
    t_ok "TH_KEEP=1: $root kept" test -d "$root"
else
    t_fails "$root removed" test -e "$root"
fi
t_ok "th_teardown again is a no-op" th_teardown

t_done
