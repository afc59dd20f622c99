#!/usr/bin/env bash
# Start the local services the test suite talks to, where they are down, and prepare them.
# PostgreSQL 127.0.0.1:5432, Mosquitto 127.0.0.1:1883, NATS 127.0.0.1:4222, Redis 127.0.0.1:6379.
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { for _ in $(seq 1 50); do up "$1" && return 0; sleep 0.2; done; echo "services: $2 did not come up on port $1" >&2; return 1; }
need_root() { [ "$(id -u)" = 0 ] || { echo "services: $1 is down and starting it needs root" >&2; return 1; }; }

if ! up 5432; then
  if ! command -v pg_ctlcluster >/dev/null; then need_root postgresql && { apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }; fi
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
  wait_for 5432 PostgreSQL
fi
if ! up 1883; then
  if ! command -v mosquitto >/dev/null; then need_root mosquitto && { apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }; fi
  mosquitto -d -c /etc/mosquitto/mosquitto.conf
  wait_for 1883 Mosquitto
fi
if ! up 4222 && command -v nats-server >/dev/null; then
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  wait_for 4222 NATS
fi
if ! up 6379 && command -v redis-server >/dev/null; then
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for 6379 Redis
fi
# The test database (trust auth on loopback for user postgres).
if ! psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='shotwatch_test'" | grep -q 1; then
  psql -h 127.0.0.1 -U postgres -qc "CREATE DATABASE shotwatch_test" || exit 1
fi
echo "services: PostgreSQL, Mosquitto$(up 4222 && echo ', NATS')$(up 6379 && echo ', Redis') up"
