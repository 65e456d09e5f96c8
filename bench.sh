#!/usr/bin/env bash
# The benchmark (README, "Benchmark"): builds Release, provisions RabbitMQ if needed, runs router and adapter as
# their own processes against the ARI simulator, and appends a results table to docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")"
infra/provision.sh
dotnet build -c Release Router.sln -v q -nologo
dotnet src/Benchmark/bin/Release/net10.0/CallRouter.Benchmark.dll "$@"
