#!/usr/bin/env bash
# Declares, in one virtual host, the exchanges and queues the router's side uses, and the policies for app queues
# (README "Broker definitions and policies"). Idempotent. Usage: infra/broker-definitions.sh [VHOST=/]
# Every declaration here is exactly what the router (MassTransit), the adapter and src/Messages/Topology.cs declare
# (same type, durable, no arguments); a difference would make their own declarations fail with PRECONDITION_FAILED.
# APP_QUEUE_TTL_MS (60000 = the longest broadcast timeout): how long a message may wait in an app queue.
# RABBITMQ_QUEUE_TYPE=quorum (a cluster, as the code's Broker__QueueType=quorum): the durable queues are quorum queues.
set -euo pipefail
source "$(dirname "$0")/management.sh"
vhost="${1:-/}"
v=$(urlencode "$vhost")
ttl="${APP_QUEUE_TTL_MS:-60000}"

mgmt PUT "vhosts/$v"

exchange() { mgmt PUT "exchanges/$v/$(urlencode "$1")" "{\"type\":\"$2\",\"durable\":true,\"auto_delete\":false,\"internal\":false,\"arguments\":{}}"; }
queue_arguments='{}'
[ "${RABBITMQ_QUEUE_TYPE:-classic}" = quorum ] && queue_arguments='{"x-queue-type":"quorum"}'
queue() { mgmt PUT "queues/$v/$(urlencode "$1")" "{\"durable\":true,\"auto_delete\":false,\"arguments\":$queue_arguments}"; }
# bind SOURCE e|q DESTINATION [ROUTING-KEY]; a binding that exists already is left as it is.
bind() { mgmt POST "bindings/$v/e/$(urlencode "$1")/$2/$(urlencode "$3")" "{\"routing_key\":$(json_string "${4:-}"),\"arguments\":{}}"; }

# Topology.cs: the exchanges apps and adapters publish to.
exchange call.broadcasts topic
exchange call.claims fanout
exchange app.heartbeats fanout
exchange call.commands direct
exchange call.events fanout
# Call control: commands (direct, key = route; what no adapter takes goes to the alternate exchange, answered
# node-unavailable by any adapter), events to the controlling app (topic, key = app), refused commands.
mgmt PUT "exchanges/$v/call.control.unrouted" '{"type":"fanout","durable":true,"auto_delete":false,"internal":false,"arguments":{}}'
queue call.control.unrouted
bind call.control.unrouted q call.control.unrouted
mgmt PUT "exchanges/$v/call.control" '{"type":"direct","durable":true,"auto_delete":false,"internal":false,"arguments":{"alternate-exchange":"call.control.unrouted"}}'
exchange call.control.events topic
queue call.control_error
# The router's receive endpoint as MassTransit declares it: queue and exchange "router", the inputs bound to the exchange.
exchange router fanout
queue router
bind router q router
bind call.broadcasts e router _router
bind call.claims e router
bind call.events e router
# Where refused claims and unreadable heartbeats are parked.
exchange router_error fanout
queue router_error
bind router_error q router_error
queue app.heartbeats_error
# What app queues dead-letter (expired, rejected without requeue): kept a day, at most 100,000, for inspection.
# Call records: adapters publish, every router with PostgreSQL writes them (same declarations as the code's).
exchange call.records fanout
queue cdr.writer
bind call.records q cdr.writer
queue cdr.writer_error
# Durable timers (Router__SagaRepository=Postgres): the routers add one wait queue per delay length as they need it.
exchange router.timers direct
exchange dead-letters fanout
queue dead-letters
bind dead-letters q dead-letters

# App queues are declared by infra/add-app-user.sh (apps may declare them again with the same arguments): the TTL and dead-lettering come from a policy. A message's
# own expiration (broadcasts carry their deadline) still applies when it is shorter. Not app.heartbeats_error.
mgmt PUT "policies/$v/app-queues" "{\"pattern\":\"^app\\\\.(?!heartbeats_error\$)\",\"apply-to\":\"queues\",\"priority\":0,\"definition\":{\"message-ttl\":$ttl,\"dead-letter-exchange\":\"dead-letters\"}}"
mgmt PUT "policies/$v/dead-letters" '{"pattern":"^dead-letters$","apply-to":"queues","priority":0,"definition":{"message-ttl":86400000,"max-length":100000}}'
echo "broker-definitions: vhost '$vhost' has the router's exchanges and ${RABBITMQ_QUEUE_TYPE:-classic} queues, app-queue TTL ${ttl} ms, dead-letters"
