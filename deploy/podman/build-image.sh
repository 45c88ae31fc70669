#!/usr/bin/env bash
# Build the service image with podman on this kind of host:
#   deploy/podman/build-image.sh [TAG] [CONTEXT]   (default: localhost/digits-api:latest, this repo)
#
# CONTEXT is a registry bundle (python -m tools.registry_bundle REF --out DIR; `make image
# REF=digits-classifier#prod`): that revision's code and pulled artifacts, with
# models/registry.json, whose version, stage, reference and commit become labels.
# - runc runtime and no ulimits via the project-local containers.conf;
# - base image: $BASE_IMAGE if set, else the official python:3.11-slim-bookworm when it
#   is present or can be pulled, else a local Debian image from build-base-image.sh;
# - host network and the host CA bundle for pip (TLS-intercepting proxies);
# - OCI labels: git revision, source URL, model version (md5 prefix from dvc.lock);
# - docker image format, so HEALTHCHECK is kept (the OCI format drops it).
# Plain `docker build .` / `podman build --format docker .` build the same Dockerfile;
# this script only adds host tweaks.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
TAG="${1:-localhost/digits-api:latest}"
CONTEXT="$(cd "${2:-$ROOT}" && pwd)"
OFFICIAL_BASE="docker.io/library/python:3.11-slim-bookworm"
LOCAL_BASE="localhost/digits-base:bookworm"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$HERE/containers.conf}"

if [ -z "${BASE_IMAGE:-}" ]; then
  if podman image exists "$OFFICIAL_BASE" || timeout 300 podman pull -q "$OFFICIAL_BASE" >/dev/null 2>&1; then
    BASE_IMAGE="$OFFICIAL_BASE"
  else
    echo "cannot pull $OFFICIAL_BASE: using the local Debian base image $LOCAL_BASE"
    "$HERE/build-base-image.sh" "$LOCAL_BASE"
    BASE_IMAGE="$LOCAL_BASE"
  fi
fi

# Model version as the service reports it: the first 12 hex digits of the md5 of
# models/model.onnx recorded in dvc.lock.
MODEL_VERSION="$(awk '/path: models\/model\.onnx$/ {found=1; next} found && /md5:/ {print substr($2, 1, 12); exit}' "$CONTEXT/dvc.lock")"
[ -n "$MODEL_VERSION" ] || { echo "models/model.onnx not found in dvc.lock: run the pipeline first" >&2; exit 1; }
VCS_REF="$(git -C "$CONTEXT" rev-parse HEAD 2>/dev/null || echo unknown)"
REGISTRY_VERSION="" REGISTRY_STAGE="" REGISTRY_REF=""
if [ -f "$CONTEXT/models/registry.json" ]; then
  registry_field() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get(sys.argv[2]) or "")' "$CONTEXT/models/registry.json" "$1"; }
  REGISTRY_VERSION="$(registry_field version)" REGISTRY_STAGE="$(registry_field stage)" REGISTRY_REF="$(registry_field ref)"
  VCS_REF="$(registry_field commit)"
fi
SOURCE_URL="$(git -C "$ROOT" config --get remote.origin.url 2>/dev/null || echo https://github.com/example/digits-mlops)"

# No --file: podman finds the Dockerfile by its default name, as `docker build .` does.
args=(--format docker --network host --tag "$TAG"
  --build-arg "BASE_IMAGE=$BASE_IMAGE" --build-arg "MODEL_VERSION=$MODEL_VERSION"
  --build-arg "VCS_REF=$VCS_REF" --build-arg "SOURCE_URL=$SOURCE_URL"
  --build-arg "REGISTRY_VERSION=$REGISTRY_VERSION" --build-arg "REGISTRY_STAGE=$REGISTRY_STAGE"
  --build-arg "REGISTRY_REF=$REGISTRY_REF")
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt
if [ -f "$CA_BUNDLE" ]; then
  args+=(--volume /etc/ssl/certs:/etc/ssl/certs:ro --build-arg "PIP_CERT=$CA_BUNDLE")
fi

echo "building $TAG from $BASE_IMAGE (model $MODEL_VERSION, registry ${REGISTRY_VERSION:-none} ${REGISTRY_STAGE}, revision $VCS_REF)"
podman build "${args[@]}" "$CONTEXT"
