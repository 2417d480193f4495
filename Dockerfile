# syntax=docker/dockerfile:1
# One image for every process type: `docker run IMAGE web|worker|clock|release` runs that line
# of the Procfile (deploy/entrypoint.sh); anything else runs as given (`... bridge jobs failed`).

# Build: a wheelhouse of exactly the lock. requirements.txt's pins are fetched as wheels and its
# last line `.` builds the project's wheel; --no-deps lets nothing the lock does not name in.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md requirements.txt ./
COPY bridge/ bridge/
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels --requirement requirements.txt

# Runtime: the wheelhouse installed (non-editable, offline) into a venv; no source, no compiler.
FROM python:3.11-slim
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PORT=5000
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    python -m venv /opt/venv \
    && pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
    && pip check
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --no-create-home --shell /usr/sbin/nologin bridge
WORKDIR /app
COPY Procfile gunicorn.conf.py ./
COPY mappings/ mappings/
COPY --chmod=755 deploy/entrypoint.sh /usr/local/bin/bridge-entrypoint
USER 10001:10001
EXPOSE 5000
# Liveness of the web process (slim has no curl). worker and clock serve no HTTP: compose.yaml
# turns the check off for them.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request as r; r.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '5000'), timeout=4)"
ENTRYPOINT ["bridge-entrypoint"]
CMD ["web"]
