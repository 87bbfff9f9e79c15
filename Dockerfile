FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TOCSIN_DATA_DIR=/var/lib/tocsin
# The wheel carries the content folders (alerts/, glossary/, scenarios/; see setup.py): nothing is read from /app.
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY backend ./backend
COPY alerts ./alerts
COPY glossary ./glossary
COPY scenarios ./scenarios
RUN pip install --no-cache-dir . && rm -rf /app/* && useradd --system --home /var/lib/tocsin tocsin \
    && mkdir -p /var/lib/tocsin && chown tocsin /var/lib/tocsin
USER tocsin
EXPOSE 8000 8001
CMD ["tocsin", "serve", "--host", "0.0.0.0", "--port", "8000"]
