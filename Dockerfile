# The sidecar image: one process serving the proxy (8080) and admin (8081) ports.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml constraints.txt README.md ./
COPY sidecar ./sidecar
COPY migrations ./migrations
COPY schemas ./schemas
COPY deploy/sidecar.yaml /etc/sidecar/sidecar.yaml
# Optional extras, e.g. --build-arg EXTRAS=embeddings (semantic drift) or embeddings-minilm.
ARG EXTRAS=""
RUN pip install -c constraints.txt -e ".${EXTRAS:+[$EXTRAS]}" \
    && useradd --system --home /var/lib/sidecar sidecar \
    && mkdir -p /var/lib/sidecar/spool && chown -R sidecar /var/lib/sidecar
USER sidecar
ENV SIDECAR_DATABASE_URL=sqlite:////var/lib/sidecar/sidecar.db
VOLUME ["/var/lib/sidecar"]
EXPOSE 8080 8081
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8081/healthz')"
ENTRYPOINT ["sidecar"]
CMD ["serve", "--config", "/etc/sidecar/sidecar.yaml"]
