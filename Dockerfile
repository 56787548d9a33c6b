# One image for web, worker and beat. Built by docker-compose.yml.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY newsletter ./newsletter
COPY workers ./workers
COPY templates ./templates
COPY migrations ./migrations
COPY examples ./examples
RUN pip install --no-cache-dir -e . && useradd --system --uid 1000 newsletter
USER newsletter
EXPOSE 8000
CMD ["newsletter", "web", "--host", "0.0.0.0", "--port", "8000"]
