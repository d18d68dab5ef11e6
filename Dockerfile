# Image of the Burgernet gateway: the API (`burgernet serve`), the tip line's FastAGI server
# (`burgernet ivr`), the tip writer, the channel workers, housekeeping, migrations and the prompt
# builder. Used by docker-compose.yml.
# The base image is a build argument so that a machine without a registry can build on a local
# stand-in (scripts/docker-standins.sh); its default is the official image.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# espeak-ng: the offline voice for the IVR prompts and, as fallback, the spoken alerts;
# ffmpeg: decodes gTTS's MP3.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng ffmpeg \
    && rm -rf /var/lib/apt/lists/*

# The source stays in /app (installed in place): prompts/prompts.toml is read from beside the
# package. Only what the package needs: no .venv, .git or local data from the build context.
WORKDIR /app
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY ivr ./ivr
COPY prompts/prompts.toml ./prompts/prompts.toml
RUN pip install -e .

# The voice worker writes each bulletin's audio into /var/lib/burgernet/audio as this user: the
# directory exists here, owned by it, so that a named volume mounted on it starts owned by it.
RUN useradd --system --uid 10001 --user-group --home-dir /home/burgernet --create-home burgernet \
    && install -d -o burgernet -g burgernet -m 755 /var/lib/burgernet /var/lib/burgernet/audio
USER burgernet

EXPOSE 8000 4573 9100
# Listen on all interfaces inside the container; publish the port to choose who can reach it.
CMD ["burgernet", "serve", "--host", "0.0.0.0"]
