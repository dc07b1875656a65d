# chunksync-server as a container: non-root, one data volume, a health check.
#   docker build -t chunksync-server .
#   docker run -d -p 8400:8400 -v chunksync-data:/data chunksync-server
#   docker exec -it <container> chunksync-server user add NAME --admin
# The image listens on 0.0.0.0:8400 without TLS: put a TLS proxy in front, or mount a
# certificate and set tls-cert/tls-key in /etc/chunksync-server.toml (see docs/server.md).
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY chunksync ./chunksync
COPY chunksync_server ./chunksync_server
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
LABEL org.opencontainers.image.title="chunksync-server" \
      org.opencontainers.image.description="Self-hosted, end-to-end-encrypted folder sync: the chunk server" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl \
    && rm -rf /wheels \
    && groupadd --system --gid 10001 chunksync \
    && useradd --system --uid 10001 --gid chunksync --home-dir /data --shell /usr/sbin/nologin chunksync \
    && mkdir -p /data \
    && chown chunksync:chunksync /data \
    && chmod 0700 /data
COPY packaging/server.toml /etc/chunksync-server.toml
ENV CHUNKSYNC_SERVER_DATA=/data \
    CHUNKSYNC_SERVER_CONFIG=/etc/chunksync-server.toml \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8400
USER 10001:10001
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8400/healthz', timeout=4).status != 200)"]
STOPSIGNAL SIGTERM
CMD ["chunksync-server", "serve", "--host", "0.0.0.0", "--port", "8400", "--log-format", "json"]
