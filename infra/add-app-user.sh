#!/usr/bin/env bash
# Creates (or updates) the RabbitMQ user for one app, with only the rights an app needs (README "Security: app users").
# Usage: infra/add-app-user.sh APP PASSWORD [VHOST=/]    Idempotent: running it again resets the password and rights.
# The user is named after the app: the router and adapters let a user speak only for the app of its own name.
# It also declares the app's queue app.APP and its binding (README "Wire contract"): in a cluster it is a quorum queue
# (RABBITMQ_QUEUE_TYPE=quorum), which an app declaring it with no arguments could not match.
set -euo pipefail
source "$(dirname "$0")/management.sh"

if [ $# -lt 2 ] || [ $# -gt 3 ]; then
  echo "usage: $0 APP PASSWORD [VHOST]" >&2
  exit 2
fi
app="$1" password="$2" vhost="${3:-/}"
# The wire contract's app names; they hold no regex metacharacters, so they go into the patterns as they are.
if ! [[ "$app" =~ ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$ ]]; then
  echo "app name '$app' is not valid (letters, digits, '-', '_'; at most 64; not starting with '_')" >&2
  exit 2
fi

user=$(urlencode "$app")
v=$(urlencode "$vhost")
mgmt PUT "users/$user" "{\"password\":$(json_string "$password"),\"tags\":\"\"}"

# configure: declare its own queue, and the server-named exclusive reply queues (amq.gen-...) some clients use.
# write:     bind its queue (queue.bind needs write on the queue), publish claims, heartbeats and call-control commands.
# read:      consume its queue and its reply queues; bind from call.broadcasts and call.control.events (queue.bind needs
#            read on the exchange).
# Direct reply-to (amq.rabbitmq.reply-to) needs no permission of its own.
mgmt PUT "permissions/$v/$user" "$(printf '{"configure":"^(app\\\\.%s|amq\\\\.gen-.*)$","write":"^(app\\\\.%s|call\\\\.claims|app\\\\.heartbeats|call\\\\.control)$","read":"^(app\\\\.%s|call\\\\.broadcasts|call\\\\.control\\\\.events|amq\\\\.gen-.*)$"}' "$app" "$app" "$app")"
# On the topic exchange, bindings (checked against "read") only with its own name as routing key; no publishing.
mgmt PUT "topic-permissions/$v/$user" "$(printf '{"exchange":"call.broadcasts","read":"^%s$","write":"^$"}' "$app")"
# The same for the events of the calls it controls.
mgmt PUT "topic-permissions/$v/$user" "$(printf '{"exchange":"call.control.events","read":"^%s$","write":"^$"}' "$app")"
# The app's queue, bound to the broadcasts with its name (the exchange as infra/broker-definitions.sh declares it).
queue_arguments='{}'
[ "${RABBITMQ_QUEUE_TYPE:-classic}" = quorum ] && queue_arguments='{"x-queue-type":"quorum"}'
mgmt PUT "exchanges/$v/call.broadcasts" '{"type":"topic","durable":true,"auto_delete":false,"internal":false,"arguments":{}}'
mgmt PUT "queues/$v/$(urlencode "app.$app")" "{\"durable\":true,\"auto_delete\":false,\"arguments\":$queue_arguments}"
mgmt POST "bindings/$v/e/call.broadcasts/q/$(urlencode "app.$app")" "{\"routing_key\":$(json_string "$app"),\"arguments\":{}}"
# And to the events of the calls it will control (README "Call control").
mgmt PUT "exchanges/$v/call.control.events" '{"type":"topic","durable":true,"auto_delete":false,"internal":false,"arguments":{}}'
mgmt POST "bindings/$v/e/call.control.events/q/$(urlencode "app.$app")" "{\"routing_key\":$(json_string "$app"),\"arguments\":{}}"
echo "add-app-user: user '$app' in vhost '$vhost' can use queue app.$app, claim, heartbeat and control the calls it wins"
