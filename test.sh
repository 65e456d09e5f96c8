#!/usr/bin/env bash
# Runs the whole test suite on real parts: provisions RabbitMQ (and python3-pika, amqplib, docker-compose for the
# example apps and compose file tests) if needed. A failing run ends with the failed tests and their messages.
set -euo pipefail
cd "$(dirname "$0")"
infra/provision.sh
log=$(mktemp -t callrouter-test.XXXXXX)
set +e
dotnet test Router.sln -c Release --logger "console;verbosity=normal" "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
if [ "$status" -ne 0 ]; then
  echo
  echo "=== failed tests (full log: $log) ==="
  grep -a -E -A 12 '^\s+Failed [A-Za-z]' "$log" || echo "(no test failed: the build or the test host did)"
fi
exit "$status"
