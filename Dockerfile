# ndt-pacs: one image for every role (DICOM receiver, HTTP server, one-shot init).
# The role is chosen by the command: `serve --no-http`, `serve --no-dicom`, `db upgrade`, ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY storage ./storage
COPY pacs ./pacs
COPY viewer ./viewer
COPY ndt_pacs ./ndt_pacs
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /data pacs \
 && mkdir -p /data \
 && chown pacs /data

USER pacs
# Receive spool only: with S3 objects and a PostgreSQL index a container holds no state.
ENV PACS_DATA_DIR=/data \
    PACS_HOST=0.0.0.0 \
    PACS_DICOM_PORT=11112 \
    PACS_HTTP_PORT=8042
VOLUME ["/data"]
EXPOSE 11112 8042
STOPSIGNAL SIGTERM
ENTRYPOINT ["pacs"]
CMD ["serve"]
