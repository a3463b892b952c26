#!/bin/bash
# t50-join-refused - wrong, expired and used-up tokens, strangers and
# garbage on the peer and join ports: refused, counted, the cluster and
# peerd's memory unaffected
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 3 || t_bail "cannot set up the test hosts"
log=$(th_dir 2)/log

th_peerd_start 1 --bootstrap --cluster-name guarded >/dev/null
it_wait_healthy 1 60 || t_bail "h1 did not become healthy"
one=$(th_peerctl 1 token create --uses 1)
short=$(th_peerctl 1 token create --ttl 1s --uses 5)
[ -n "$one" ] && [ -n "$short" ] || t_bail "no tokens"

# join_refused K TOKEN PATTERN: peerd --join exits 77 saying PATTERN and
# leaves the data dir without a cluster.
join_refused() {
    local rc
    th_run "$1" timeout 90 "$PEERD" --data-dir "$(th_data "$1")" \
        --join "$(th_addr 1)" --token "$2" >"$log/join.out" 2>&1
    rc=$?
    [ "$rc" = 77 ] || { echo "exit status $rc, expected 77"; cat "$log/join.out"; return 1; }
    grep -q -- "$3" "$log/join.out" || { echo "no '$3' in:"; cat "$log/join.out"; return 1; }
    [ ! -e "$(th_data "$1")/peerd.db" ] || { echo "a database was left"; return 1; }
}

# a wrong secret: same id and cluster key, other secret
wrong=$(awk -F. '{ printf "%s.%s.%s.%s", $1, $2, "00112233445566778899aabbccddeeff", $4 }' <<<"$one")
t_ok "a wrong token secret is refused (exit 77, says why)" \
    join_refused 2 "$wrong" "wrong token secret"
unknown=$(awk -F. '{ printf "%s.%s.%s.%s", $1, "0123456789abcdef", $3, $4 }' <<<"$one")
t_ok "an unknown token id is refused" join_refused 2 "$unknown" "unknown token"
sleep 2
t_ok "an expired token is refused" join_refused 2 "$short" "token expired"
t_fails "a token that is not a token is refused before any network" \
    th_run 2 "$PEERD" --data-dir "$(th_data 2)" --join "$(th_addr 1)" --token garbage
it_join 2 "$one"
t_ok "the one-use token admits h2" it_wait_healthy 2 60
t_ok "the same one-use token is refused for h3 (used up)" \
    join_refused 3 "$one" "used up"
t_is "h1 counted the refused joins" "$(it_json 1 .peer.joins_refused)" 4
sleep 1
t_is "with two hosts the cluster keeps one voter (two would stop at one failure)" \
    "$(it_json 1 '"\(.raft.voters | length) \(.raft.learners | length)"')" "1 1"

rss() { awk '/^VmRSS/ { print $2 }' /proc/"$(th_peerd_pid 1)"/status; }
stat1() { it_json 1 ".peer.transport.$1"; }
rss_before=$(rss)
key1=$(th_peerctl 1 members --json | jq -r '.[] | select(.name == "h1") | .pubkey')
joinpub=$(awk -F. '{ print $4 }' <<<"$one")
addr=$(th_addr 1)

# a stranger: valid CURVE, a key that was never admitted
refused0=$(stat1 refused_keys)
head -c 200 /dev/urandom | th_run 3 "$PEERSEND" curve "$addr" 7050 "$key1" 3 ||
    t_diag "peersend curve failed"
more_refused() { [ "$(stat1 refused_keys)" -gt "$refused0" ]; }
t_ok "a key that was never admitted is refused on the peer port and counted" \
    th_wait_for 10 more_refused

# garbage that is not even ZMTP, on both ports
# (libzmq reports such a connection as a failed handshake or, when the
# bytes look like an old ZMTP 1.0 peer, as a disconnect)
bad() { echo $(($(stat1 handshake_failures) + $(stat1 disconnects))); }
hs0=$(bad)
for i in $(seq 1 20); do
    head -c 300 /dev/urandom | th_run 3 "$PEERSEND" raw "$addr" 7050
    head -c 300 /dev/urandom | th_run 3 "$PEERSEND" raw "$addr" 7051
done
more_hs() { [ "$(bad)" -ge $((hs0 + 40)) ]; }
t_ok "raw garbage on the peer and join ports: every connection refused, counted" \
    th_wait_for 10 more_hs

# garbage frames through a proper CURVE session on the join socket
mal0=$(stat1 malformed)
head -c 500 /dev/urandom | th_run 3 "$PEERSEND" curve "$addr" 7051 "$joinpub" 200
more_mal() { [ "$(stat1 malformed)" -ge $((mal0 + 200)) ]; }
t_ok "200 garbage frames on the join socket: dropped and counted" \
    th_wait_for 10 more_mal
dis0=$(stat1 disconnects)
head -c $((5 * 1024 * 1024)) /dev/zero | th_run 3 "$PEERSEND" curve "$addr" 7051 "$joinpub" 1
more_dis() { [ "$(stat1 disconnects)" -gt "$dis0" ]; }
t_ok "an oversized frame (5 MiB) on the join socket: connection dropped, counted" \
    th_wait_for 10 more_dis

for i in $(seq 1 5); do
    head -c 1000 /dev/urandom | th_run 3 "$PEERSEND" curve "$addr" 7051 "$joinpub" 200
    head -c 300 /dev/urandom | th_run 3 "$PEERSEND" curve "$addr" 7050 "$key1" 5
done
rss_after=$(rss)
t_diag "peerd RSS before ${rss_before} KiB, after ${rss_after} KiB"
t_ok "peerd's memory stays flat (grew < 2 MiB over ~1,000 bad frames)" \
    test $((rss_after - rss_before)) -lt 2048
t_ok "the cluster is unaffected: h1 healthy" it_healthy 1
t_is "the cluster is unaffected: srun -N2" \
    "$(th_run 2 srun -N2 hostname | sort | tr '\n' ' ')" "h1 h2 "
t_is "only h1 and h2 are members" \
    "$(th_peerctl 1 members --json | jq -r '[.[].name] | join(" ")')" "h1 h2"
t_done
