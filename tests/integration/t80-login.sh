#!/bin/bash
# t80-login - a login host: h1 bootstraps a mini cluster (compute +
# controller + accounting); h2 joins with --login ADDR:8888 --login-user
# nobody --no-compute.  Jupyter answers its API with the token (and
# refuses without it), a terminal can be opened, peerctl status prints
# the URL; sbatch on the login host runs the job on h1; h2 has no slurmd
# and no node; sacct works there too.
. "$(dirname "$0")/lib.sh"
th_trap
th_setup 2 || t_bail "cannot set up the test hosts"

th_peerd_start 1 --bootstrap --cluster-name login1 --tier mini >/dev/null
t_ok "h1: mini cluster healthy" it_wait_healthy 1 90
token=$(th_peerctl 1 token create)
addr=$(th_addr 2)
th_peerd_start 2 --join "$(th_addr 1)" --token "$token" \
    --login "$addr:8888" --login-user nobody --no-compute >/dev/null
t_ok "h2 (login) becomes healthy" it_wait_healthy 2 90
it_field_is "h2 status: role login" 2 .role login
it_field_is "h2 status: jupyter service runs" 2 \
    '.services[] | select(.name=="jupyter") | "\(.state) \(.healthy)"' "running true"
it_field_is "h2 status: no slurmd runs on the login host" 2 \
    '.services[] | select(.name=="slurmd") | .state' stopped
jtoken=$(th_run 2 cat "$(th_data 2)/jupyter/token")
it_field_is "h2 status: the Jupyter URL with its token" 2 .login.url \
    "http://$addr:8888/?token=$jtoken"
t_is "peerctl status (text) has the jupyter line" \
    "$(th_peerctl 2 status | awk '$1 == "jupyter" && $2 ~ /^http/ { print $2 }')" \
    "http://$addr:8888/?token=$jtoken"
t_is "the token file is 0600 root" \
    "$(stat -c '%a %U' "$(th_data 2)/jupyter/token")" "600 root"
t_ok "the token is not on Jupyter's command line" \
    bash -c "! grep -qaF '$jtoken' /proc/$(it_svc 2 jupyter pid)/cmdline"

# from h1: over the test network, as a browser would
api() { # K PATH [curl args]: HTTP status code of a request from hK
    local k=$1 path=$2
    shift 2
    th_run "$k" curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" \
        "http://$addr:8888$path"
}
t_is "Jupyter API answers with the token (from h1)" \
    "$(api 1 /api/status -H "Authorization: token $jtoken")" 200
t_is "Jupyter API refuses without the token" "$(api 1 /api/status)" 403
t_is "Jupyter API refuses a wrong token" \
    "$(api 1 /api/status -H "Authorization: token 00$jtoken")" 403
t_is "a terminal can be opened (POST /api/terminals)" \
    "$(api 1 /api/terminals -X POST -H "Authorization: token $jtoken")" 200
t_is "Jupyter runs as nobody" \
    "$(ps -o user= -p "$(it_svc 2 jupyter pid)")" nobody

t_is "sinfo from the login host lists only the compute node" \
    "$(th_run 2 sinfo -h -N -o '%N %t')" "h1 idle"
j=$(th_run 2 setpriv --reuid nobody --regid nogroup --clear-groups \
    sbatch --parsable -o /dev/null --chdir /tmp --wrap 'hostname')
t_ok "sbatch as nobody on the login host accepts a job" test -n "$j"
t_ok "the job finishes" it_wait_job 2 "$j" 60
it_sacct_is() {
    [ "$(th_run 2 sacct -n -X -P -j "$1" -o State,ExitCode,NodeList,User 2>/dev/null)" = "$2" ]
}
t_ok "sacct on the login host: COMPLETED on h1, as nobody" \
    th_wait_for 30 it_sacct_is "$j" "COMPLETED|0:0|h1|nobody"
t_is "srun from the login host runs on h1" "$(th_run 2 srun hostname)" h1

t_done
