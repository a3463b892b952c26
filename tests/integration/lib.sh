# shellcheck shell=bash
# tests/integration/lib.sh - what the integration tests share
#
# Sources the test-host harness and adds helpers around peerd: wait for a
# healthy peer, read a field of `peerctl status --json`, run Slurm
# commands on a host.  PEERD, PEERCTL and CTLSEND point at the binaries
# under test (scripts/test sets them).
IT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../../scripts/testhost.sh
. "$IT_DIR/../../scripts/testhost.sh"

: "${PEERD:?set PEERD to the peerd binary}"
: "${PEERCTL:?set PEERCTL to the peerctl binary}"
: "${CTLSEND:=$(dirname "$PEERD")/tests/ctlsend}"
: "${PEERSEND:=$(dirname "$PEERD")/tests/peersend}"

# it_status K: peerctl status --json of hK (whatever its exit status).
it_status() {
    th_peerctl "$1" status --json 2>/dev/null || true
}

# it_json K FILTER: a jq filter applied to hK's status, raw output.
it_json() {
    it_status "$1" | jq -r "$2"
}

# it_json_is K FILTER VALUE: hK's status says so (for th_wait_for).
it_json_is() {
    [ "$(it_json "$1" "$2")" = "$3" ]
}

# it_healthy K: peerctl status exits 0 on hK.
it_healthy() {
    th_peerctl "$1" status >/dev/null 2>&1
}

# it_wait_healthy K [TIMEOUT=60]
it_wait_healthy() {
    th_wait_for "${2:-60}" it_healthy "$1"
}

# it_svc K NAME FIELD: a field of one service in hK's status.
it_svc() {
    it_json "$1" ".services[] | select(.name == \"$2\") | .$3"
}

# it_wait_job K JOBID [TIMEOUT=60]: wait until the job has left squeue.
it_job_gone() {
    [ -z "$(th_run "$1" squeue -h -j "$2" 2>/dev/null)" ]
}
it_wait_job() {
    th_wait_for "${3:-60}" it_job_gone "$1" "$2"
}

# it_ns_procs K: pids in hK's network namespace other than its anchor.
it_ns_procs() {
    local a p
    a=$(th_anchor "$1")
    for p in $(ip netns pids "$(th_ns "$1")"); do
        [ "$p" = "$a" ] || printf '%s ' "$p"
    done
}

# it_no_procs K: true when nothing but the anchor runs on hK.
it_no_procs() {
    [ -z "$(it_ns_procs "$1")" ]
}

# it_field_is DESC K FILTER EXPECTED: a TAP test on one status field.
it_field_is() {
    t_is "$1" "$(it_json "$2" "$3")" "$4"
}

# it_nodes K: "name state" of every node in sinfo on hK, sorted, one line.
it_nodes() {
    th_run "$1" sinfo -h -N -o '%N %t' 2>/dev/null | sort -u | tr '\n' ' '
}

# it_nodes_are K "h1 idle h2 idle ": wait helper.
it_nodes_are() {
    [ "$(it_nodes "$1")" = "$2" ]
}

# it_members K: the replicated part of hK's member list, one line.
it_members() {
    th_peerctl "$1" members --json 2>/dev/null |
        jq -c '[.[] | {id, name, address, role, voter, state}]'
}

# it_join K TOKEN: start a peer on hK that joins h1.
it_join() {
    th_peerd_start "$1" --join "$(th_addr 1)" --token "$2" >/dev/null
}

# it_three_hosts NAME: bootstrap cluster NAME on h1, join h2 and h3, wait
# until the three nodes are idle and the three hosts vote.  Returns 1 with
# the step that failed on stderr.
it_three_hosts() {
    local token
    th_peerd_start 1 --bootstrap --cluster-name "$1" >/dev/null
    it_wait_healthy 1 60 || { echo "h1 did not become healthy" >&2; return 1; }
    token=$(th_peerctl 1 token create --uses 2) || { echo "no token" >&2; return 1; }
    it_join 2 "$token"
    it_join 3 "$token"
    th_wait_for 60 it_nodes_are 1 "h1 idle h2 idle h3 idle " ||
        { echo "the three nodes did not become idle" >&2; return 1; }
    th_wait_for 30 it_voters_are 1 3 || { echo "no three voters" >&2; return 1; }
}

# it_voters_are K N: hK's Raft configuration has N voters.
it_voters_are() {
    [ "$(it_json "$1" '.raft.voters | length')" = "$2" ]
}

# it_controller K: the placed controller as hK's peer sees it ("-" if none).
it_controller() {
    it_json "$1" '.placement.host // "-"'
}

# it_standbys_in_sync K: both standbys of a 3-voter cluster hold the newest
# state generation of the controller hK.
it_standbys_in_sync() {
    [ "$(it_json "$1" '[.placement.state.standbys[] | select(.lag_generations == 0)] | length')" = 2 ]
}
