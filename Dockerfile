# syntax=docker/dockerfile:1
# aivoice-exporter: Prometheus exporter for the ITNIO AI-voice API.
#   docker build -t aivoice-exporter .
#   docker run -p 10188:10188 -v $PWD/config.yaml:/etc/aivoice-exporter/config.yaml:ro aivoice-exporter

# --- builder: make the wheel (build tools never reach the runtime image) ---
FROM python:3.11-slim AS builder
WORKDIR /src
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
COPY pyproject.toml README.md ./
COPY exporter/ exporter/
RUN python -m pip wheel --no-deps --wheel-dir /wheels .

# --- runtime ---
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    AIVOICE_HEALTHCHECK_URL=http://127.0.0.1:10188/-/healthy
RUN groupadd --system --gid 10188 aivoice \
 && useradd --system --uid 10188 --gid aivoice --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin aivoice \
 && mkdir -p /etc/aivoice-exporter
COPY --from=builder /wheels /tmp/wheels
RUN python -m pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels
COPY deploy/docker/healthcheck.py /usr/local/bin/aivoice-exporter-healthcheck
USER 10188:10188
EXPOSE 10188
HEALTHCHECK --interval=30s --timeout=10s --start-period=10s --retries=3 \
    CMD ["python", "/usr/local/bin/aivoice-exporter-healthcheck"]
ENTRYPOINT ["aivoice-exporter"]
CMD ["--config.file=/etc/aivoice-exporter/config.yaml"]
