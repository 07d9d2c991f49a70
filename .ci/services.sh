#!/usr/bin/env bash
# Starts the local services the tests need when they are not already running (the machine normally starts
# them before a session; the commands are the machine's own).
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! up 6379; then
  echo "starting redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! up 4222; then
  echo "starting nats"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
fi
for _ in $(seq 1 50); do up 6379 && up 4222 && exit 0; sleep 0.2; done
up 6379 || echo "redis is not reachable on 6379"
up 4222 || echo "nats is not reachable on 4222"
exit 1
