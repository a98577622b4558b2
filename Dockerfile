# groupgate: the sidecar on a slim Python, as a non-root user, in production mode.
#
# `serve` refuses to start until a caller credential is set (GROUPGATE_API_KEYS, or caller
# JWTs): docker run -e GROUPGATE_API_KEYS=<a key of 16+ characters> ... (compose.yaml does).
# The demo (demo graph, open admin API, open decisions) only on request:
#   docker run -p 8181:8181 <image> groupgate serve --demo
# Every setting comes from the environment (GROUPGATE_*); nothing in CMD overrides them.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GROUPGATE_HOST=0.0.0.0 \
    GROUPGATE_PORT=8181

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
COPY policies ./policies
# The policies are installed inside the package (its default policy directory).
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home groupgate

USER 10001
# 8181: the API (GROUPGATE_PORT). 8182: the decision listener, when started with
# GROUPGATE_DECISION_PORT=8182: POST /v1/check for gateways.
EXPOSE 8181 8182
# `groupgate health` asks /healthz on GROUPGATE_PORT, so it follows the configured port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["groupgate", "health", "--timeout", "2"]
CMD ["groupgate", "serve"]
