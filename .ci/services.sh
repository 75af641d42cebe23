#!/usr/bin/env bash
# Start PostgreSQL, Redis and RabbitMQ if they are not answering (commands from the env notes),
# and install the Debian packages the browser tests and benchmarks use.
set -euo pipefail

wait_for() {  # wait_for NAME COMMAND...: up to 60 s
    local name=$1; shift
    for _ in $(seq 60); do "$@" >/dev/null 2>&1 && { echo "$name: up"; return 0; }; sleep 1; done
    echo "$name: did not come up" >&2; return 1
}

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
fi
wait_for postgresql pg_isready -q -h 127.0.0.1 -p 5432

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
wait_for redis redis-cli -h 127.0.0.1 ping

if ! rabbitmqctl -q status >/dev/null 2>&1; then
    rabbitmq-server -detached
fi
wait_for rabbitmq rabbitmq-diagnostics -q check_port_connectivity

# Debian packages for the browser tests (chromium, driven by Playwright through its path) and
# the benchmarks (wrk); installed once per machine.
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
command -v tmux >/dev/null || missing+=(tmux)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
