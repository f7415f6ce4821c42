FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip install --no-cache-dir .
ENV RULESTREAM_HOST=0.0.0.0 RULESTREAM_PORT=8000 MALLOC_ARENA_MAX=2
EXPOSE 8000
CMD ["rulestream", "serve"]
