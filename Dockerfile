# The mlwarden gateway.
#   Build: docker build -t mlwarden .
#   Run:   docker run -p 8000:8000 -v mlwarden-ws:/workspace mlwarden
# On the first run the empty volume becomes a workspace (docker/entrypoint.sh runs `mlwarden init`).
#
# Base: python 3.11 slim on Debian bookworm, pinned by tag and by the digest of its
# multi-architecture index. The digest was taken from public repositories pinning the same tag
# (no registry is reachable where this file was written); check it with
#   docker buildx imagetools inspect python:3.11.14-slim-bookworm
# and let Dependabot or Renovate (ecosystem "docker") move tag and digest together.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    MLWARDEN_HOME=/workspace \
    MLWARDEN_LOG_FORMAT=json

RUN groupadd --system --gid 10001 mlwarden \
    && useradd --system --uid 10001 --gid mlwarden --home-dir /workspace --shell /usr/sbin/nologin mlwarden \
    && mkdir -p /workspace /app && chown mlwarden:mlwarden /workspace

WORKDIR /app
# Exact, hash-checked versions first (a layer that changes only with the lock), then mlwarden itself.
COPY requirements.lock ./
RUN pip install --no-compile --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-compile --no-deps --no-build-isolation . && rm -rf /root/.cache /app/build
COPY --chmod=0755 docker/entrypoint.sh /usr/local/bin/mlwarden-entrypoint

USER 10001:10001
VOLUME ["/workspace"]
EXPOSE 8000

# The probe uses the plain-HTTP health listener on 127.0.0.1:8081, which also works when the
# gateway's port requires client certificates (--tls-cert/--tls-key/--client-ca).
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8081/healthz', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["mlwarden-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000", "--health-port", "8081"]
