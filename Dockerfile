# The tracker daemon in a container (docs/OPERATIONS.md, "In a container").
#
#   docker build -t shopify-tracker .
#   docker run --init --stop-timeout 30 -p 8080:8080 \
#       -e TRACKER_DATABASE_URL=postgresql://tracker:...@db.example.com:5432/tracker \
#       -e TRACKER_SHOPS__0__DOMAIN=acme.myshopify.com -e TRACKER_SHOPS__0__ACCESS_TOKEN=shpat_... \
#       -e TRACKER_WEB__AUTH__API_TOKEN=... -e TRACKER_WEB__AUTH__USERNAME=merchant \
#       -e TRACKER_WEB__AUTH__PASSWORD=... -e TRACKER_WEB__AUTH__SESSION_SECRET=... \
#       shopify-tracker
#
# A managed PostgreSQL (database.url) is the recommended setup here. Without one the embedded
# PostgreSQL starts in /var/lib/tracker/postgres: mount a volume there, and never run the
# container as root (the image's user is the unprivileged "tracker").

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN groupadd --system --gid 10001 tracker \
    && useradd --system --uid 10001 --gid tracker --home-dir /var/lib/tracker \
        --create-home --shell /usr/sbin/nologin tracker \
    && install -d -o tracker -g tracker -m 0700 /var/lib/tracker/postgres \
    && install -d -m 0755 /etc/tracker

WORKDIR /opt/tracker/src
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY carriers ./carriers
COPY tracker ./tracker
RUN pip install . \
    && cd / && rm -rf /opt/tracker/src \
    && tracker --version

WORKDIR /var/lib/tracker
COPY deploy/config.container.yaml /etc/tracker/config.yaml

USER tracker
ENV HOME=/var/lib/tracker XDG_RUNTIME_DIR=/var/lib/tracker
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"]
ENTRYPOINT ["tracker"]
CMD ["run", "--config", "/etc/tracker/config.yaml"]
