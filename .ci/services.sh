#!/usr/bin/env bash
# Makes sure the services the tests talk to are up: Redis on 127.0.0.1:6379, NATS with
# JetStream on 127.0.0.1:4222 and PostgreSQL on 127.0.0.1:5432 (database test). Starts a stopped one with the machine's own packages; installs
# the Debian package when the binary is missing. Only loopback addresses are used.
set -uo pipefail

up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_up() {
  for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done
  return 1
}

ensure_pkg() { # binary package
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "installing $2"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >/dev/null 2>&1 || true
  command -v "$1" >/dev/null 2>&1
}

if up 6379; then echo "redis: up"; else
  if ensure_pkg redis-server redis-server; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log >/dev/null 2>&1 || true
  fi
  wait_up 6379 && echo "redis: started" || echo "redis: NOT available (tests that need it will fail under CI=true)"
fi

if up 4222; then echo "nats: up"; else
  nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  if [ -x "$nats_bin" ] || ensure_pkg nats-server nats-server; then
    nats_bin=$(command -v nats-server || echo /usr/sbin/nats-server)
    mkdir -p /var/lib/nats-server
    start-stop-daemon --start --oknodo --background --exec "$nats_bin" -- \
      -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log >/dev/null 2>&1 || true
  fi
  wait_up 4222 && echo "nats: started" || echo "nats: NOT available (tests that need it will fail under CI=true)"
fi
if up 5432; then echo "postgresql: up"; else
  if [ -d /etc/postgresql ] && command -v pg_ctlcluster >/dev/null 2>&1; then
    for v in $(ls /etc/postgresql); do
      pg_ctlcluster --skip-systemctl-redirect "$v" main start >/dev/null 2>&1 || true
    done
  fi
  wait_up 5432 && echo "postgresql: started" || echo "postgresql: NOT available (tests that need it will fail under CI=true)"
fi
if up 5432 && command -v psql >/dev/null 2>&1; then
  # The tests use the database test (trust auth on loopback); create it when missing.
  if ! psql -h 127.0.0.1 -U postgres -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'" 2>/dev/null | grep -q 1; then
    psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test" >/dev/null 2>&1 && echo "postgresql: database test created"
  fi
fi
exit 0
