#!/usr/bin/env bash
# Build a minimal Debian bookworm + Python 3.11 base image locally, for hosts that
# cannot pull the official python:3.11-slim-bookworm image.
#
#   deploy/podman/build-base-image.sh [IMAGE]      (default: localhost/digits-base:bookworm)
#
# Idempotent: exits early when IMAGE already exists. Needs root (debootstrap) and
# network access to a Debian mirror: debootstrap's own default, or DEBIAN_MIRROR when set
# (an override with no default here). DEBIAN_SUITE picks the suite (default bookworm).
# Use the result with
#   podman build --build-arg BASE_IMAGE=localhost/digits-base:bookworm .
set -euo pipefail

IMAGE="${1:-localhost/digits-base:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"
HERE="$(cd "$(dirname "$0")" && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

if podman image exists "$IMAGE"; then
  echo "base image $IMAGE already exists; skipping"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "debootstrap needs root: run this script as root" >&2
  exit 1
fi
command -v debootstrap >/dev/null || { echo "debootstrap is not installed (make system-deps)" >&2; exit 1; }

ROOTFS="$(mktemp -d "${TMPDIR:-/tmp}/digits-base.XXXXXX")"
trap 'rm -rf "$ROOTFS"' EXIT

echo "debootstrap $SUITE into $ROOTFS (minbase + python3, python3-venv;" \
  "mirror: ${DEBIAN_MIRROR:-the debootstrap default})"
# The mirror argument only when DEBIAN_MIRROR is set and not empty.
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" ${DEBIAN_MIRROR:+"$DEBIAN_MIRROR"} >"$ROOTFS.log" 2>&1 || { tail -n 30 "$ROOTFS.log" >&2; rm -f "$ROOTFS.log"; exit 1; }
rm -f "$ROOTFS.log"

# Trim what a runtime base does not need: apt lists/caches, docs, man pages, locales.
rm -rf "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/var/cache/apt/*.bin "$ROOTFS"/var/cache/apt/archives/*.deb \
  "$ROOTFS"/usr/share/doc/* "$ROOTFS"/usr/share/man/* "$ROOTFS"/usr/share/info/* \
  "$ROOTFS"/var/log/*.log "$ROOTFS"/var/log/apt/*

tar --numeric-owner -C "$ROOTFS" -c . | podman import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' \
  - "$IMAGE"
echo "built $IMAGE"
podman image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "size: %.1f MB\n", $1/1e6}'
