# glyphlab model server: `docker build -t glyphlab .` then
#   docker run --rm -p 8000:8000 -v "$PWD/runs/RUN/models/cnn-small:/model:ro" glyphlab /model
# (export first with `glyphlab export runs/RUN/models/cnn-small` so the server uses ONNX Runtime).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# CPU-only torch from PyTorch's own index first, so the package's torch==2.13.0 pin is already met
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu

WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
# the local package itself; its dependencies are bounded in pyproject.toml (torch pinned there)
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
