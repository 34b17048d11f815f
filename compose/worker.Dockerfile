# The onceproof worker image for machines that reach a registry (CI with Docker Hub):
#   docker build -f compose/worker.Dockerfile -t onceproof/worker:ci .
#   ONCEPROOF_WORKER_IMAGE=onceproof/worker:ci onceproof run --runtime docker ...
# Offline, `onceproof images build` makes onceproof/worker:local-4 from this machine's Python instead.
# The harness mounts the checkout's source at /opt/onceproof/src either way, so the workers always run
# the same code as the harness.
FROM python:3.11-slim
RUN pip install --no-cache-dir "msgspec>=0.18" "redis==6.4.0" "kafka-python==3.0.12" "nats-py==2.16.0"
ENV PYTHONPATH=/opt/onceproof/src PYTHONDONTWRITEBYTECODE=1
WORKDIR /opt/onceproof/src
COPY harness /opt/onceproof/src/harness
COPY targets /opt/onceproof/src/targets
COPY workloads /opt/onceproof/src/workloads
COPY checkers /opt/onceproof/src/checkers
CMD ["python3", "-m", "harness.worker"]
