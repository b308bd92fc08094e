# The mlwarden gateway. Build: docker build -t mlwarden .   Run: docker run -p 8000:8000 -v ws:/workspace mlwarden
# Pinned to an exact patch release; add "@sha256:<digest>" from your registry mirror to pin the bytes too
# (this workplace has no Docker registry access to look the digest up).
FROM python:3.11.7-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    MLWARDEN_HOME=/workspace

RUN groupadd --system --gid 10001 mlwarden \
    && useradd --system --uid 10001 --gid mlwarden --home-dir /workspace --shell /usr/sbin/nologin mlwarden \
    && mkdir -p /workspace /app && chown mlwarden:mlwarden /workspace

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-compile . && rm -rf /root/.cache

USER 10001:10001
VOLUME ["/workspace"]
EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]

ENTRYPOINT ["mlwarden"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
