# The team stack's MLflow tracking server (compose.yaml builds it): Python, the
# pinned packages of requirements.txt and the authentication settings of
# basic_auth.ini, run as an unprivileged user.
ARG PYTHON_IMAGE=python:3.12.11-slim-bookworm
FROM ${PYTHON_IMAGE}
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONUNBUFFERED=1
COPY requirements.txt /tmp/requirements.txt
RUN pip install --no-cache-dir --requirement /tmp/requirements.txt \
    && useradd --uid 10001 --no-log-init --create-home mlflow
COPY basic_auth.ini /etc/mlflow/basic_auth.ini
USER 10001
EXPOSE 5000
CMD ["mlflow", "server", "--help"]
