#!/usr/bin/env bash
# Sourced by the infra scripts: calls to the RabbitMQ management HTTP API as an administrator.
# RABBITMQ_HOST (localhost), RABBITMQ_MANAGEMENT_PORT (15672), RABBITMQ_ADMIN_USER / RABBITMQ_ADMIN_PASSWORD (guest/guest).
mgmt_base="http://${RABBITMQ_HOST:-localhost}:${RABBITMQ_MANAGEMENT_PORT:-15672}/api"
mgmt_auth="${RABBITMQ_ADMIN_USER:-guest}:${RABBITMQ_ADMIN_PASSWORD:-guest}"

# Percent-encodes one path segment (a vhost "/" becomes %2F).
urlencode() {
  local text="$1" out="" c i
  for ((i = 0; i < ${#text}; i++)); do
    c="${text:i:1}"
    case "$c" in
      [A-Za-z0-9._~-]) out+="$c" ;;
      *) out+=$(printf '%%%02X' "'$c") ;;
    esac
  done
  printf '%s' "$out"
}

# A JSON string literal for any text.
json_string() {
  local text="${1//\\/\\\\}"
  text="${text//\"/\\\"}"
  printf '"%s"' "$text"
}

# mgmt METHOD PATH [JSON-BODY]: fails (exit 1) with the API's answer on anything but 2xx.
mgmt() {
  local method="$1" path="$2" body="${3:-}" answer status
  answer=$(curl -sS -u "$mgmt_auth" -X "$method" -H 'content-type: application/json' \
    ${body:+--data-binary "$body"} -w '\n%{http_code}' "$mgmt_base/$path") || {
    echo "management API $mgmt_base is not reachable (infra/rabbitmq.sh starts RabbitMQ)" >&2
    exit 1
  }
  status="${answer##*$'\n'}"
  if [[ "$status" != 2* ]]; then
    echo "$method $path: HTTP $status ${answer%$'\n'*}" >&2
    exit 1
  fi
}
