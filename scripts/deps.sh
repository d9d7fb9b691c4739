#!/usr/bin/env bash
# Installs and starts what crier's tests need, from Debian's packages, when it is missing:
# redis-server, nginx, Chromium, openssl, Node.js (the browser client's unit tests) and a
# Docker engine (plus the stand-in golang base image, since no container registry is
# reachable here). Safe to run again: it skips what is there.
set -euo pipefail
export GOTOOLCHAIN=go1.27.3 # the stand-in image's Go is the one crier is pinned to

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v chromium >/dev/null || need+=(chromium)
command -v dockerd >/dev/null || need+=(docker.io)
command -v busybox >/dev/null || need+=(busybox-static)
command -v openssl >/dev/null || need+=(openssl)
command -v node >/dev/null || need+=(nodejs)
if ((${#need[@]})); then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing ${need[*]} and not root; install them first" >&2
    exit 1
  fi
  echo "deps: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# A Docker engine without a bridge network (see ../shared/docker/README.md).
if ! docker info >/dev/null 2>&1; then
  log=$(mktemp -d)/dockerd.log
  echo "deps: starting dockerd (log: $log)"
  nohup dockerd --bridge=none --iptables=false --ip-masq=false >"$log" 2>&1 &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  docker info >/dev/null 2>&1 || { echo "deps: dockerd did not start; see $log" >&2; exit 1; }
fi

# The stand-in golang base image for the Dockerfile's build stage, made from the pinned Go
# and tagged as the Dockerfile names it.
img=../shared/docker/local-go-image.sh
[ -x "$img" ] || img=$(dirname "$0")/../../shared/docker/local-go-image.sh
if [ -x "$img" ]; then
  "$img" golang:1.27.3-bookworm
else
  echo "deps: no local-go-image.sh next to the repository; the Docker test needs the golang image" >&2
fi
