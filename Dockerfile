# One-container image: the Reflex app (UI + API) in production mode on one port (8000).
# Configure with environment variables (see .env.example): SECRET_KEY and DATABASE_URL at least.
#   docker build -t pacs .
#   docker run -p 8000:8000 -e SECRET_KEY=... -e DATABASE_URL=postgresql+psycopg://... pacs
# The DICOM listener for modalities: add -p 11112:11112 (DICOM_PORT is 11112 in the image).
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends nodejs npm unzip curl \
    fonts-dejavu-core fonts-droid-fallback \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY . .
RUN python -m venv .venv && .venv/bin/pip install --no-cache-dir -e . \
 && npm install --prefix .tools --no-save --no-audit --no-fund bun@1.4.4

ENV PATH="/app/.tools/node_modules/.bin:/app/.venv/bin:$PATH" \
    REFLEX_USE_SYSTEM_BUN=1 \
    REFLEX_TELEMETRY_ENABLED=false \
    PACS_ENV=production \
    STORAGE_PATH=/data/storage \
    FRONTEND_PORT=8000 \
    BACKEND_PORT=8000 \
    DICOM_PORT=11112

VOLUME ["/data"]
EXPOSE 8000 11112
CMD ["reflex", "run", "--env", "prod", "--single-port", "--frontend-port", "8000", "--backend-port", "8000"]
