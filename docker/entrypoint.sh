#!/bin/sh
# Container entry point: `mlwarden ARGS…`, creating the workspace first when `serve` starts on
# an empty volume (the first `docker run`). A volume that holds anything is never touched: if it
# is not a workspace, `serve` says so and exits.
set -eu

home="${MLWARDEN_HOME:-/workspace}"
mlwarden="${MLWARDEN_BIN:-mlwarden}"

if [ "${1:-}" = "serve" ]; then
  if [ ! -d "$home" ] || [ -z "$(ls -A "$home")" ]; then
    echo "mlwarden: empty workspace at $home: creating it (mlwarden init)" >&2
    "$mlwarden" init --home "$home" >&2
  fi
fi

exec "$mlwarden" "$@"
