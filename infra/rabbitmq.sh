#!/usr/bin/env bash
# Makes a RabbitMQ with the management console reachable at $RABBITMQ_HOST:$RABBITMQ_PORT.
# Already reachable: nothing to do. Otherwise install the Debian package (root) and start it.
set -euo pipefail
host="${RABBITMQ_HOST:-localhost}"
port="${RABBITMQ_PORT:-5672}"

reachable() { (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; }
console_up() { (exec 3<>"/dev/tcp/$host/${RABBITMQ_MANAGEMENT_PORT:-15672}") 2>/dev/null; }

if reachable && console_up; then
  echo "rabbitmq: already reachable at $host:$port"
  exit 0
fi
if [ "$host" != "localhost" ] && [ "$host" != "127.0.0.1" ]; then
  echo "rabbitmq: $host:$port is not reachable and is not local; start it there" >&2
  exit 1
fi

if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "rabbitmq: installing the Debian package"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq rabbitmq-server >/dev/null
fi

# The Debian package starts the service through systemd, which is absent in containers: start it directly.
if ! rabbitmqctl -q status >/dev/null 2>&1; then
  echo "rabbitmq: starting"
  mkdir -p /var/log/rabbitmq /var/lib/rabbitmq
  chown -R rabbitmq:rabbitmq /var/log/rabbitmq /var/lib/rabbitmq 2>/dev/null || true
  (setsid rabbitmq-server >/var/log/rabbitmq/foreground.log 2>&1 &)
fi
rabbitmqctl -q wait --timeout 120 /var/lib/rabbitmq/mnesia/rabbit@"$(hostname -s)".pid >/dev/null 2>&1 \
  || rabbitmqctl -q await_startup --timeout 120 >/dev/null
rabbitmq-plugins -q enable rabbitmq_management >/dev/null

# The tests and ops use the management API: wait for the console as well as AMQP.
for _ in $(seq 1 60); do reachable && console_up && break; sleep 1; done
reachable && console_up || { echo "rabbitmq: did not come up with its console; see /var/log/rabbitmq" >&2; exit 1; }
echo "rabbitmq: running at $host:$port, console http://localhost:15672 (guest/guest)"
