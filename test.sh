#!/usr/bin/env bash
# Runs the whole test suite on real parts: provisions RabbitMQ (and python3-pika, amqplib, docker-compose for the
# example apps and compose file tests) if needed.
set -euo pipefail
cd "$(dirname "$0")"
infra/provision.sh
dotnet test Router.sln -c Release --logger "console;verbosity=normal" "$@"
