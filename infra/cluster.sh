#!/usr/bin/env bash
# A three-node RabbitMQ cluster on this machine, in containers on a network of their own (README "A RabbitMQ cluster").
#   infra/cluster.sh [up]   start rabbit1..3 (idempotent), join them, declare the broker definitions with quorum queues
#   infra/cluster.sh down   remove the containers and the network
# Nodes publish AMQP on 127.0.0.1:${CLUSTER_PORT_BASE:-5681}+N-1 and the console on 127.0.0.1:${CLUSTER_MGMT_BASE:-15681}+N-1,
# so clients take RABBITMQ_HOSTS=127.0.0.1:5681,127.0.0.1:5682,127.0.0.1:5683 and Broker__QueueType=quorum.
# Partition handling is pause_minority: with three nodes, a node cut off from the other two stops serving, so clients
# move to the majority, which keeps every quorum queue's leader and no two sides accept writes for one queue.
# net_ticktime 10 s (Erlang's default 60 s): a peer that stops answering is declared down within about 10 s; until
# then operations that touch the whole cluster (declaring a queue, an exclusive reply queue) wait for it.
set -euo pipefail
here="$(dirname "$0")"
image="${RABBITMQ_IMAGE:-callrouter/rabbitmq:bookworm-2}"
network="${CLUSTER_NETWORK:-callrouter-cluster}"
amqp_base="${CLUSTER_PORT_BASE:-5681}"
mgmt_base="${CLUSTER_MGMT_BASE:-15681}"
cookie="${CLUSTER_COOKIE:-callrouter-cluster-cookie}"

down() {
  for n in 1 2 3; do docker rm -f "rabbit$n" >/dev/null 2>&1 || true; done
  docker network rm "$network" >/dev/null 2>&1 || true
  echo "cluster: removed"
}

node_up() {
  local n="$1"
  if docker container inspect "rabbit$n" >/dev/null 2>&1; then
    docker start "rabbit$n" >/dev/null
    return
  fi
  docker run -d --name "rabbit$n" --hostname "rabbit$n" --network "$network" --network-alias "rabbit$n" \
    -e RABBITMQ_NODENAME="rabbit@rabbit$n" -e RABBITMQ_COOKIE="$cookie" \
    -p "127.0.0.1:$((amqp_base + n - 1)):5672" -p "127.0.0.1:$((mgmt_base + n - 1)):15672" \
    "$image" sh -c 'echo "[rabbitmq_management]." >/etc/rabbitmq/enabled_plugins &&
      printf "cluster_partition_handling = pause_minority\nloopback_users = none\n" >/etc/rabbitmq/rabbitmq.conf &&
      echo "[{kernel, [{net_ticktime, 10}]}]." >/etc/rabbitmq/advanced.config &&
      exec /usr/local/bin/start-rabbitmq' >/dev/null
}

# rabbitmqctl cannot reach a node whose Erlang VM is still booting: ask again until it answers.
await_node() {
  for _ in $(seq 1 60); do
    docker exec "rabbit$1" rabbitmqctl -q await_startup --timeout 60 >/dev/null 2>&1 && return
    sleep 1
  done
  echo "cluster: rabbit$1 did not start; see docker logs rabbit$1" >&2
  exit 1
}

up() {
  "$here/docker-engine.sh"
  docker network inspect "$network" >/dev/null 2>&1 || docker network create "$network" >/dev/null
  for n in 1 2 3; do node_up "$n"; done
  for n in 1 2 3; do await_node "$n"; done
  for n in 2 3; do
    if ! docker exec "rabbit$n" rabbitmqctl -q cluster_status --formatter json | grep -q '"rabbit@rabbit1"'; then
      docker exec "rabbit$n" rabbitmqctl -q stop_app
      docker exec "rabbit$n" rabbitmqctl -q join_cluster rabbit@rabbit1
      docker exec "rabbit$n" rabbitmqctl -q start_app
    fi
  done
  RABBITMQ_MANAGEMENT_PORT="$mgmt_base" RABBITMQ_HOST=127.0.0.1 RABBITMQ_QUEUE_TYPE=quorum \
    "$here/broker-definitions.sh" "${RABBITMQ_VHOST:-/}"
  echo "cluster: rabbit1..3 up; RABBITMQ_HOSTS=127.0.0.1:$amqp_base,127.0.0.1:$((amqp_base + 1)),127.0.0.1:$((amqp_base + 2)) Broker__QueueType=quorum"
}

case "${1:-up}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 [up|down]" >&2; exit 2 ;;
esac
