# Digits inference service: Litestar + ONNX Runtime serving the DVC-locked model.
#
#   docker build -t digits-api .            # or: podman build --format docker -t digits-api .
#
# The image requires API keys (DIGITS_AUTH=api-key) from /run/secrets/digits-api-keys. First
# run: a keys file with a key for you, readable by the container's uid 10001, mounted:
#
#   KEY=$(.venv/bin/python -m serving.access.keys --file api-keys.jsonl add me --scopes predict,explain,read)
#   chmod 0644 api-keys.jsonl
#   docker run --rm --read-only --tmpfs /tmp -p 127.0.0.1:8000:8000 \
#     -v "$PWD/api-keys.jsonl:/run/secrets/digits-api-keys:ro" digits-api
#
# (tested as written in tests/integration/test_doc_examples_container.py, from
# docs/deployment.md "The image"; without keys: -e DIGITS_AUTH=none, on loopback only.)
#
# The runtime stage holds only the serving runtime from the hash-pinned
# requirements/serving.lock (no scikit-learn, dvc, ART or compilers), the server
# code, dvc.lock and the artifacts the service reads. See docs/deployment.md.

# Official slim image by default; hosts that cannot pull it pass a local one
# (deploy/podman/build-base-image.sh). Works with /usr/local/bin/python3 (slim)
# and /usr/bin/python3 (Debian's package): everything runs through the venv.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
# Optional CA bundle for pip, for builds behind a TLS-intercepting proxy; the file
# must be visible in the build (podman build -v /etc/ssl/certs:/etc/ssl/certs:ro).
ARG PIP_CERT=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PYTHONDONTWRITEBYTECODE=1
SHELL ["/bin/sh", "-eu", "-c"]
COPY requirements/serving.lock /tmp/serving.lock
# Binary wheels only, every file hash-checked, no dependency resolution: the
# lock is the complete list. pip/setuptools are removed once they are done.
RUN if [ -z "${PIP_CERT}" ]; then unset PIP_CERT; fi; \
    python3 -m venv /opt/venv; \
    /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes --no-deps \
        --only-binary=:all: -r /tmp/serving.lock; \
    /opt/venv/bin/python -m pip uninstall --yes pip setuptools; \
    /opt/venv/bin/python -c "import litestar, msgspec, numpy, onnxruntime, prometheus_client"; \
    if /opt/venv/bin/python -c "import sklearn" 2>/dev/null; then echo "sklearn leaked into the runtime" >&2; exit 1; fi

FROM ${BASE_IMAGE} AS runtime
SHELL ["/bin/sh", "-eu", "-c"]
# Numeric, non-root runtime user with no home and no login shell. No installer in the
# runtime, whatever the base: the official slim image ships pip (and setuptools, wheel) in
# the system Python, Debian's python3 does not; it is removed where it is, and the build
# fails if any is left. /var/lib/digits, the service's, is where a deployment mounts the volume
# for decision records (DIGITS_DECISION_LOG_DIR below it): a new docker or podman named
# volume takes this directory's owner and mode, so uid 10001 can write it.
RUN groupadd --gid 10001 app; \
    useradd --no-log-init --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin app; \
    install -d -o 10001 -g 10001 -m 0700 /var/lib/digits; \
    if python3 -m pip --version >/dev/null 2>&1; then \
        python3 -m pip uninstall --yes --root-user-action=ignore pip setuptools wheel; \
    fi; \
    if python3 -c "import pip" 2>/dev/null || command -v pip >/dev/null || command -v pip3 >/dev/null; then \
        echo "pip left in the runtime image" >&2; exit 1; \
    fi

COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Owned by root, read-only for the service: the image content is immutable at runtime.
COPY dvc.lock ./dvc.lock
# models/: model, OOD detector, metadata and, when present, the signature bundle
# (model.sig) and the registry entry (registry.json); .dockerignore keeps the pickle out.
COPY models/ ./models/
COPY reports/metrics.json reports/feature_importance.json ./reports/
COPY data/prepared/reference_stats.json ./data/prepared/reference_stats.json
COPY serving/ ./serving/
# Bytecode compiled at build time (the root filesystem is read-only at runtime).
RUN /opt/venv/bin/python -m compileall -q --invalidation-mode unchecked-hash /app/serving

# Binds 0.0.0.0, so the authentication mode is explicit: API keys from the keys file mounted
# at /run/secrets/digits-api-keys (the default of that setting; python -m serving.access.keys add;
# only hashes in it). Set DIGITS_AUTH=jwt (+ DIGITS_JWT_*) for
# an identity provider, or DIGITS_AUTH=none only behind a gateway that authenticates.
# /tmp is the only writable path the service needs (a tmpfs / emptyDir at runtime):
# the Prometheus multiprocess directory lives there and is wiped on start.
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    DIGITS_LOCK_FILE=/app/dvc.lock \
    DIGITS_HOST=0.0.0.0 \
    DIGITS_PORT=8000 \
    DIGITS_WORKERS=1 \
    DIGITS_LOG_LEVEL=info \
    DIGITS_AUTH=api-key \
    PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('DIGITS_PORT', '8000') + '/ready', timeout=2).status == 200 else 1)"]
CMD ["python", "-m", "serving"]

# Last, so a new commit or model only rebuilds this metadata layer.
ARG SOURCE_URL="https://github.com/example/digits-mlops"
ARG VCS_REF="unknown"
ARG MODEL_VERSION="unknown"
ARG REGISTRY_VERSION=""
ARG REGISTRY_STAGE=""
ARG REGISTRY_REF=""
LABEL org.opencontainers.image.title="digits-api" \
      org.opencontainers.image.description="Digits classifier: Litestar + ONNX Runtime serving the DVC-locked model" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.revision="${VCS_REF}" \
      org.opencontainers.image.version="${MODEL_VERSION}" \
      io.digits.model.version="${MODEL_VERSION}" \
      io.digits.registry.version="${REGISTRY_VERSION}" \
      io.digits.registry.stage="${REGISTRY_STAGE}" \
      io.digits.registry.ref="${REGISTRY_REF}"
