#!/usr/bin/env bash
# Operators' view of a running deployment (README, "Operations: metrics, health, status"): router and adapter
# /metrics, RabbitMQ's management API and, if Postgres__ConnectionString is set, the CDR table. --once prints one snapshot.
set -euo pipefail
cd "$(dirname "$0")"
dotnet run -c Release --project src/Status -- "$@"
