# Production image of the Burgernet gateway. Used by docker-compose.yml (`gateway` and `migrate`).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# Only what the package needs: no .venv, .git or local data from the build context.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY ivr ./ivr
RUN pip install . && rm -rf /src/build

RUN useradd --system --uid 10001 --user-group --home-dir /app --create-home burgernet
WORKDIR /app
USER burgernet

EXPOSE 8000
# Listen on all interfaces inside the container; publish the port to choose who can reach it.
CMD ["burgernet", "serve", "--host", "0.0.0.0"]
