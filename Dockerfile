# syntax=docker/dockerfile:1
#
# TrustScore Stream worker image.
#
#   docker build -t trustscore-stream .
#   docker run -e TRUSTSCORE_BROKER=kafka://kafka:9092 -e TRUSTSCORE_WEB_HOST=<this worker's
#     address> -v trustscore-data:/data -p 6066:6066 trustscore-stream
#
# The deployment sets TRUSTSCORE_BROKER (unset, the worker would start an embedded,
# non-persistent broker inside the container) and, with more than one worker,
# TRUSTSCORE_WEB_HOST: the address other workers use to reach this one when they route a
# score request to the key's owner (CONTRACT §3); its default, 127.0.0.1, only works for a
# single worker. TRUSTSCORE_DATABASE_URL unset = SQLite in /data.

ARG PYTHON_IMAGE=python:3.11-slim

# --- builder: /opt/venv with the project and its pinned dependencies -------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# No compiler or -dev packages: every pinned dependency ships a manylinux wheel for CPython
# 3.11 on x86_64 (faust-streaming, rocksdict, msgspec, orjson, uvloop, psycopg-binary, ...).
# On a platform where one of them has no wheel, add
#   RUN apt-get update && apt-get install -y --no-install-recommends build-essential
# here; the runtime stage stays the same.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, in their own layer, so that a code change does not reinstall them.
# README* is a wildcard: pyproject names README.md, copied when present.
COPY pyproject.toml README* ./
RUN python -c "import tomllib; \
print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

# trustscore_stream/{agents,tables,web} are symlinks to ../agents, ../tables, ../web: COPY
# keeps them as symlinks, so their targets are copied too; setuptools follows them when it
# builds the wheel. A non-editable install: the venv does not depend on /src.
COPY trustscore_stream ./trustscore_stream
COPY agents ./agents
COPY tables ./tables
COPY web ./web
RUN pip install --no-deps . \
    && pip check \
    && cd / && python -c "import trustscore_stream.agents.ingest, trustscore_stream.web.health, \
trustscore_stream.tables.dedup, trustscore_stream.db.migrate"

# --- runtime: the venv only, as a non-root user ------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --system --gid 10001 trustscore \
    && useradd --system --uid 10001 --gid trustscore --create-home \
        --home-dir /home/trustscore --shell /usr/sbin/nologin trustscore \
    && mkdir -p /data \
    && chown trustscore:trustscore /data

COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    TRUSTSCORE_DATA_DIR=/data \
    TRUSTSCORE_WEB_BIND=0.0.0.0 \
    TRUSTSCORE_WEB_PORT=6066 \
    PYTHONUNBUFFERED=1

USER trustscore
WORKDIR /home/trustscore

# RocksDB table state (and the SQLite database when TRUSTSCORE_DATABASE_URL is unset).
VOLUME /data
EXPOSE 6066

# Liveness (GET /health, CONTRACT §7) with the standard library: slim has no curl. urlopen
# raises on a refused connection, a timeout or a non-2xx answer: exit status 1.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('TRUSTSCORE_WEB_PORT', '6066'), timeout=4)"]

# --quiet: Faust's start-up banner is printed, not logged; the log stream is JSON lines.
CMD ["faust", "--quiet", "-L", "uvloop", "-A", "trustscore_stream.app", "worker", "-l", "info"]
