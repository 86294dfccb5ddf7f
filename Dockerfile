# tensorserve's image: behaves as tensorflow/serving (same ENV, ports, entrypoint and
# /usr/bin/tensorflow_model_server), built from pinned dependencies (requirements.lock).
#
#   docker build -t tensorserve .                       # CPU (default)
#   docker build -t tensorserve:gpu \
#     --build-arg LOCK_FILES="requirements.lock requirements-gpu.lock" .    # GPU (see README)
#
# BASE_IMAGE must provide python3 (3.11) with venv; nothing else is needed from it.
# PIP_EXTRA_ARGS lets an offline build install from a mounted wheel folder, e.g.
#   podman build -v "$PWD/build/wheels:/wheels:ro" \
#     --build-arg PIP_EXTRA_ARGS="--no-index --find-links=/wheels" .
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS build
ARG LOCK_FILES="requirements.lock"
ARG PIP_EXTRA_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY requirements*.lock ./
SHELL ["/bin/sh", "-eu", "-c"]
# hadolint ignore=SC2046,SC2086
RUN python3 -m venv /opt/tensorserve \
 && /opt/tensorserve/bin/pip install --no-cache-dir ${PIP_EXTRA_ARGS} \
        $(for f in ${LOCK_FILES}; do printf -- '-r %s ' "$f"; done)
COPY pyproject.toml README.md ./
COPY tensorserve ./tensorserve
# TensorFlow's C++ headers (430 MB) only serve custom-op builds: dropped.
# hadolint ignore=SC2086
RUN /opt/tensorserve/bin/pip install --no-cache-dir --no-deps --no-build-isolation \
        ${PIP_EXTRA_ARGS} . \
 && /opt/tensorserve/bin/pip check \
 && rm -rf /opt/tensorserve/lib/python3*/site-packages/tensorflow/include \
 && /opt/tensorserve/bin/python -m compileall -q /opt/tensorserve/lib > /dev/null \
 && /opt/tensorserve/bin/pip uninstall --yes pip

FROM ${BASE_IMAGE}
# uid 1000 as KServe's runtime expects; group 0 so an arbitrary uid (OpenShift) can read too.
# curl serves probes run inside the container (`podman kube play` turns a Kubernetes httpGet
# probe into `curl -f ...`) and people debugging; the image needs nothing else from apt.
# hadolint ignore=DL3008
RUN echo 'tensorserve:x:1000:0:tensorserve:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && mkdir -p /models /etc/tensorserve \
 && apt-get update \
 && apt-get install -y --no-install-recommends curl \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
COPY --from=build /opt/tensorserve /opt/tensorserve
COPY docker/tf_serving_entrypoint.sh /usr/bin/tf_serving_entrypoint.sh
COPY docker/healthcheck.py docker/monitoring.config /etc/tensorserve/
RUN ln -s /opt/tensorserve/bin/tensorserve /usr/bin/tensorflow_model_server
ENV MODEL_NAME=model \
    MODEL_BASE_PATH=/models \
    PATH=/opt/tensorserve/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 1000
WORKDIR /tmp
EXPOSE 8500 8501
HEALTHCHECK --interval=10s --timeout=5s --start-period=120s --retries=3 \
    CMD ["/opt/tensorserve/bin/python", "/etc/tensorserve/healthcheck.py"]
ENTRYPOINT ["/usr/bin/tf_serving_entrypoint.sh"]
