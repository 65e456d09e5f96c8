#!/usr/bin/env bash
# Everything the demo and the tests need on this machine: RabbitMQ with its console, the broker definitions and
# policies in the default vhost, PostgreSQL 15, python3-pika, amqplib for examples/node, a Compose client (only its
# "config" is used), and a Docker engine with the RabbitMQ image the Testcontainers tests start brokers from.
set -euo pipefail
here="$(dirname "$0")"
"$here/rabbitmq.sh"
"$here/broker-definitions.sh" "${RABBITMQ_VHOST:-/}"
"$here/postgres.sh"
if ! /usr/bin/python3 -c "import pika" >/dev/null 2>&1; then
  echo "provision: installing python3-pika (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-pika >/dev/null
fi

# The example apps (examples/) and their CI race: amqplib for the Node one (Node.js itself comes with the machine).
examples="$here/../examples"
if [ ! -d "$examples/node/node_modules/amqplib" ]; then
  echo "provision: npm ci in examples/node (amqplib)"
  (cd "$examples/node" && npm ci --no-audit --no-fund --loglevel=error)
fi
# The compose file's test runs 'config' with the Compose client: the v2 plugin if the docker client has it, else Debian's.
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then
  echo "provision: installing docker-compose (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker-compose >/dev/null
fi

# Brokers of a test's own (restarts, a cluster, node loss, partitions): dockerd and the image, built once (about 2 min).
"$here/docker-engine.sh"
