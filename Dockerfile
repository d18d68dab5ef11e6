# Image of the Burgernet gateway: the API (`burgernet serve`), the tip line's FastAGI server
# (`burgernet ivr`), migrations and the prompt builder. Used by docker-compose.yml.
FROM python:3.11-slim

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

RUN useradd --system --uid 10001 --user-group --home-dir /home/burgernet --create-home burgernet
USER burgernet

EXPOSE 8000 4573
# Listen on all interfaces inside the container; publish the port to choose who can reach it.
CMD ["burgernet", "serve", "--host", "0.0.0.0"]
