#!/usr/bin/env bash
# Runs the demo: provisions RabbitMQ if needed, then the router, the adapter against the ARI simulator feeding it
# calls, and three sample apps racing for them, with a live view. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")"
infra/provision.sh
dotnet run -c Release --project src/Demo -- "$@"
