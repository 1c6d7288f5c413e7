# glyphlab model server: `docker build -t glyphlab .` then
#   docker run --rm -p 8000:8000 -e GLYPHLAB_API_KEY="$(cat api-key)" \
#     -v "$PWD/runs/RUN/models/cnn-small:/model:ro" glyphlab /model
# The image has no PyTorch (the lean `glyphlab[serve]` install): export a network first with
# `glyphlab export runs/RUN/models/cnn-small`, and it is served by ONNX Runtime; scikit-learn and XGBoost
# models are served as they are. Without GLYPHLAB_API_KEY (or --api-key-file) the server warns that anyone
# who reaches the port can use it; /metrics is open to Prometheus unless --metrics-private.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# the local package with the serve extra only: no torch (pyproject's torch extra), half the install
# hadolint ignore=DL3013
RUN pip install ".[serve]" \
    && groupadd --gid 10001 glyph \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin glyph

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["glyphlab", "serve", "--host", "0.0.0.0", "--port", "8000"]
CMD ["/model"]
