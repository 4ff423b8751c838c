# syntax=docker/dockerfile:1
# aivoice-exporter: Prometheus exporter for the ITNIO AI-voice API.
#   docker build -t aivoice-exporter .
#   docker run -p 10188:10188 -v $PWD/config.yaml:/etc/aivoice-exporter/config.yaml:ro aivoice-exporter
# With call outcomes, keep the call state on a volume so a restart loses no call:
#   ... -v aivoice-state:/var/lib/aivoice-exporter aivoice-exporter \
#       --config.file=/etc/aivoice-exporter/config.yaml --storage.path=/var/lib/aivoice-exporter
#
# BASE_IMAGE is any image with Python 3.11 as `python3` and its venv module. The default is the
# public slim image; the test suite builds on a Debian bookworm image it makes with debootstrap
# (tests/deploy/test_image.py), so both must keep working.
ARG BASE_IMAGE=python:3.11-slim

# --- builder: a venv with the pinned dependencies and the exporter (nothing else leaves it) ---
FROM ${BASE_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python3 -m venv /opt/aivoice-exporter
# requirements.txt pins every runtime dependency with its hashes (`make lock` refreshes it), so an
# image built next month runs the code that was tested; wheels only, so no compiler is needed.
COPY requirements.txt /tmp/requirements.txt
RUN /opt/aivoice-exporter/bin/pip install --require-hashes --only-binary=:all: --no-deps \
      -r /tmp/requirements.txt
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY exporter/ exporter/
# Then the venv keeps only what runs: no pip or setuptools, no test suites shipped in packages.
RUN /opt/aivoice-exporter/bin/pip install --no-deps . \
 && /opt/aivoice-exporter/bin/pip check \
 && /opt/aivoice-exporter/bin/pip uninstall --yes --quiet pip setuptools \
 && find /opt/aivoice-exporter -depth -type d \( -name tests -o -name test \) -exec rm -rf {} +

# --- runtime ---
FROM ${BASE_IMAGE}
# The version is exporter/__init__.py's, the rest pyproject.toml's (a test checks they agree).
LABEL org.opencontainers.image.title="aivoice-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the ITNIO AI-voice (outbound call robot) API" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/aivoice-exporter/aivoice-exporter"
ENV PATH=/opt/aivoice-exporter/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIVOICE_HEALTHCHECK_URL=http://127.0.0.1:10188/-/healthy
RUN groupadd --system --gid 10188 aivoice \
 && useradd --system --uid 10188 --gid aivoice --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin aivoice \
 && mkdir -p /etc/aivoice-exporter \
 && install -d -m 0700 -o 10188 -g 10188 /var/lib/aivoice-exporter
COPY --from=builder /opt/aivoice-exporter /opt/aivoice-exporter
COPY deploy/docker/healthcheck.py /usr/local/bin/aivoice-exporter-healthcheck
USER 10188:10188
EXPOSE 10188
# The call state (--storage.path, docs/operations.md): a new volume starts owned by uid 10188.
VOLUME ["/var/lib/aivoice-exporter"]
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["python3", "/usr/local/bin/aivoice-exporter-healthcheck"]
ENTRYPOINT ["aivoice-exporter"]
CMD ["--config.file=/etc/aivoice-exporter/config.yaml"]
