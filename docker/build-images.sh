#!/usr/bin/env bash
# Builds the Docker backend's images locally, without any registry:
#   execbox-debian:bookworm  — a debootstrap root filesystem imported with `docker import`
#   execbox-runtime:latest   — that base plus every toolchain (runtime/Dockerfile)
# Images already present are kept (delete them or pass --rebuild to build again);
# --base-only builds just the first (for a small native-backend image: `make docker-native
# NATIVE_BASE=execbox-debian:bookworm ...`).
set -euo pipefail
cd "$(dirname "$0")"
BASE=execbox-debian:bookworm
RUNTIME=${EXECBOX_DOCKER_IMAGE:-execbox-runtime:latest}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
rebuild=0; base_only=0
for arg in "$@"; do
  case $arg in
    --rebuild) rebuild=1 ;;
    --base-only) base_only=1 ;;
    *) echo "usage: $0 [--rebuild] [--base-only]" >&2; exit 2 ;;
  esac
done

have() { docker image inspect "$1" >/dev/null 2>&1; }

if [ $rebuild = 1 ] || ! have "$BASE"; then
  command -v debootstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap </dev/null; }
  root=$(mktemp -d /var/tmp/execbox-rootfs.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  echo "debootstrap bookworm into $root"
  debootstrap --variant=minbase bookworm "$root" "$MIRROR" >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
  tar -C "$root" -c . | docker import - "$BASE" >/dev/null
  echo "imported $BASE"
fi

# The runtime image is rebuilt when its recipe changed (its hash is the image's label).
[ $base_only = 1 ] && exit 0
recipe=$(sha256sum runtime/Dockerfile | cut -c1-16)
built=$(docker image inspect -f '{{ index .Config.Labels "org.execbox.recipe" }}' "$RUNTIME" 2>/dev/null || true)
if [ $rebuild = 1 ] || [ "$built" != "$recipe" ]; then
  docker build -q --force-rm --build-arg BASE="$BASE" --label "org.execbox.recipe=$recipe" -t "$RUNTIME" runtime >/dev/null
  docker image prune -f --filter label=org.execbox.recipe >/dev/null
  echo "built $RUNTIME"
fi
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep '^execbox-'
