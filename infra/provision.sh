#!/usr/bin/env bash
# Everything the demo and the tests need on this machine: RabbitMQ with its console, the broker definitions and
# policies in the default vhost, and python3-pika.
set -euo pipefail
here="$(dirname "$0")"
"$here/rabbitmq.sh"
"$here/broker-definitions.sh" "${RABBITMQ_VHOST:-/}"
if ! /usr/bin/python3 -c "import pika" >/dev/null 2>&1; then
  echo "provision: installing python3-pika (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq python3-pika >/dev/null
fi
