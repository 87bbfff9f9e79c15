FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 TOCSIN_ALERTS_DIR=/app/alerts TOCSIN_GLOSSARY_DIR=/app/glossary TOCSIN_DATA_DIR=/var/lib/tocsin
COPY pyproject.toml README.md ./
COPY backend ./backend
RUN pip install --no-cache-dir . && useradd --system --home /var/lib/tocsin tocsin && mkdir -p /var/lib/tocsin \
    && chown tocsin /var/lib/tocsin
COPY alerts ./alerts
COPY glossary ./glossary
USER tocsin
EXPOSE 8000 8001
CMD ["tocsin", "serve", "--host", "0.0.0.0", "--port", "8000"]
