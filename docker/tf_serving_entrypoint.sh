#!/bin/sh
# tensorserve's counterpart of TF Serving's /usr/bin/tf_serving_entrypoint.sh: the same
# ports, MODEL_NAME and MODEL_BASE_PATH, and the caller's flags appended (a later flag wins,
# so `--model_config_file=...` takes over the model list as in TF Serving). `exec` makes the
# server PID 1, so `docker stop` / Kubernetes' SIGTERM reaches it directly; it drains
# in-flight requests (--shutdown_grace_seconds) and exits 0.
set -e
exec /usr/bin/tensorflow_model_server --port=8500 --rest_api_port=8501 \
    --model_name="${MODEL_NAME}" --model_base_path="${MODEL_BASE_PATH}/${MODEL_NAME}" "$@"
