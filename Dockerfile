# One image for web, worker and beat. Built by docker-compose.yml.
# Stage 1 builds the wheel and exports the locked dependencies (with hashes);
# stage 2 installs exactly those, then the wheel, never the source tree.
FROM python:3.11-slim AS build
WORKDIR /src
COPY requirements/bootstrap.txt requirements/bootstrap.txt
RUN pip install --no-cache-dir --require-hashes -r requirements/bootstrap.txt
COPY pyproject.toml uv.lock README.md ./
COPY newsletter ./newsletter
COPY workers ./workers
RUN uv export --frozen --no-dev --no-emit-project --format requirements-txt -o /out/requirements.txt \
 && uv build --wheel -o /out/dist

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /out /tmp/build
RUN pip install --no-cache-dir --require-hashes -r /tmp/build/requirements.txt \
 && pip install --no-cache-dir --no-deps /tmp/build/dist/*.whl \
 && rm -rf /tmp/build \
 && useradd --system --uid 1000 --create-home newsletter
USER newsletter
WORKDIR /home/newsletter
EXPOSE 8000
CMD ["newsletter", "web", "--host", "0.0.0.0", "--port", "8000"]
