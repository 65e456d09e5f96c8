#!/usr/bin/env bash
# Makes a Docker engine and the RabbitMQ image the Testcontainers tests and infra/cluster.sh use. Idempotent: each step
# is skipped when already done (engine answering, image present).
#  - Debian's docker.io (engine 20.10, Docker API 1.41: hence Testcontainers 3.x, 4.x needs 1.44) if dockerd is missing;
#  - dockerd started in the background (root) if no engine answers; its log in /var/log/dockerd.log;
#  - the image $RABBITMQ_IMAGE (callrouter/rabbitmq:bookworm-2; the suffix changes with its recipe) built from Debian's packages if absent: no image registry
#    is reachable here, so mmdebstrap makes a root file system with rabbitmq-server from the apt mirror, and
#    "docker import" turns it into an image. Logs go to stdout (RABBITMQ_LOGS=-), where Testcontainers' readiness
#    check reads "Server startup complete". RABBITMQ_COOKIE, when set, becomes the node's Erlang cookie before the
#    server starts (a cluster's nodes share one).
set -euo pipefail
image="${RABBITMQ_IMAGE:-callrouter/rabbitmq:bookworm-2}"
started=$SECONDS

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1; then
  echo "docker-engine: installing docker.io (Debian)"
  apt_install docker.io
fi

if ! docker info >/dev/null 2>&1; then
  echo "docker-engine: starting dockerd"
  (setsid dockerd >/var/log/dockerd.log 2>&1 &)
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  docker info >/dev/null 2>&1 || { echo "docker-engine: dockerd did not answer; see /var/log/dockerd.log" >&2; exit 1; }
fi

if ! docker image inspect "$image" >/dev/null 2>&1; then
  command -v mmdebstrap >/dev/null 2>&1 || apt_install mmdebstrap
  echo "docker-engine: building $image from Debian packages"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  cat >"$work/start-rabbitmq" <<'EOF'
#!/bin/sh
# Image entry point: the shared Erlang cookie (if any) in place before the node starts, for rabbitmq and for root's rabbitmqctl.
if [ -n "${RABBITMQ_COOKIE:-}" ]; then
  for home in /var/lib/rabbitmq /root; do
    printf '%s' "$RABBITMQ_COOKIE" >"$home/.erlang.cookie"
    chmod 400 "$home/.erlang.cookie"
  done
  chown rabbitmq:rabbitmq /var/lib/rabbitmq/.erlang.cookie
fi
# As PID 1, straight as the rabbitmq user: Debian's /usr/sbin/rabbitmq-server would run it under su, which leaves a
# shell as PID 1 that ignores SIGTERM, so "docker stop" would wait its 10 s and kill the node instead of stopping it.
cd /var/lib/rabbitmq
exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env HOME=/var/lib/rabbitmq /usr/lib/rabbitmq/bin/rabbitmq-server
EOF
  # The apt mirror this machine uses (first deb line of its sources), so the build needs nothing else from outside.
  mirror=$(grep -h -m1 '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' || true)
  mmdebstrap --variant=apt --include=rabbitmq-server \
    --customize-hook="install -m 755 '$work/start-rabbitmq' \"\$1/usr/local/bin/start-rabbitmq\"" \
    bookworm "$work/rootfs.tar" ${mirror:+"$mirror"} >"$work/mmdebstrap.log" 2>&1 \
    || { tail -20 "$work/mmdebstrap.log" >&2; exit 1; }
  docker import \
    --change 'ENV RABBITMQ_LOGS=-' \
    --change 'ENV RABBITMQ_SASL_LOGS=-' \
    --change 'EXPOSE 5672 15672 25672 4369' \
    --change 'CMD ["/usr/local/bin/start-rabbitmq"]' \
    "$work/rootfs.tar" "$image" >/dev/null
fi
echo "docker-engine: engine up, image $image present ($((SECONDS - started)) s)"
