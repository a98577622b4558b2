# groupgate: the sidecar on a slim Python, as a non-root user.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GROUPGATE_POLICIES=/app/policies

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
COPY policies ./policies
RUN pip install --no-cache-dir . \
    && useradd --system --uid 10001 --no-create-home groupgate

USER 10001
# 8181: the API. 8182: the decision listener, when started with GROUPGATE_DECISION_PORT=8182
# (or --decision-port 8182): POST /v1/check for gateways.
EXPOSE 8181 8182
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8181/healthz', timeout=2)"]
ENTRYPOINT ["groupgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8181"]
