#!/usr/bin/env bash
# Starts a three-master Redis Cluster on 127.0.0.1:${1:-7001}..+2 (no
# replicas, no persistence) unless it already answers, and waits until it
# is ready. Prints the redis+cluster:// URL on success.
set -euo pipefail
base=${1:-7001}
ports=("$base" "$((base + 1))" "$((base + 2))")
dir=${FF_CLUSTER_DIR:-/tmp/ff-redis-cluster-$base}

if redis-cli -p "$base" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
  echo "redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
  exit 0
fi

mkdir -p "$dir"
for port in "${ports[@]}"; do
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "${dir:?}/$port" && mkdir -p "$dir/$port"
  redis-server --port "$port" --cluster-enabled yes --cluster-config-file "$dir/$port/nodes.conf" \
    --dir "$dir/$port" --save '' --appendonly no --daemonize yes \
    --logfile "$dir/$port/redis.log" >/dev/null
done
for port in "${ports[@]}"; do
  for _ in $(seq 50); do
    redis-cli -p "$port" ping >/dev/null 2>&1 && break
    sleep 0.1
  done
done
redis-cli --cluster create "127.0.0.1:${ports[0]}" "127.0.0.1:${ports[1]}" "127.0.0.1:${ports[2]}" \
  --cluster-replicas 0 --cluster-yes >/dev/null
for _ in $(seq 100); do
  if redis-cli -p "$base" cluster info | grep -q 'cluster_state:ok'; then
    echo "redis+cluster://127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
    exit 0
  fi
  sleep 0.1
done
echo "the cluster on port $base did not become ready" >&2
exit 1
