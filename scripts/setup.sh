#!/usr/bin/env bash
# Idempotent set-up of a Debian machine for attune-console, shared by the two README
# commands and CI: system packages (when missing and we are root), a virtualenv with the
# package installed editable, a running Docker daemon, and the demo's base images.
# A second run only checks, so it takes a few seconds.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${ATTUNE_VENV:-$ROOT/.venv}
PYTHON=${PYTHON:-python3}
log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# --- 1. system packages -------------------------------------------------------------
missing=()
[ -x /usr/bin/dockerd ] || command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
if ! command -v docker-compose >/dev/null 2>&1 && ! docker compose version >/dev/null 2>&1; then
    missing+=(docker-compose)
fi
command -v mmdebstrap >/dev/null 2>&1 || missing+=(mmdebstrap)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v git >/dev/null 2>&1 || missing+=(git)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        die "missing system packages: ${missing[*]}; install them (sudo apt-get install ${missing[*]}) and re-run"
    fi
    log "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- 2. python environment ------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV" || die "python3 -m venv failed (on Debian: apt-get install python3-venv)"
fi
stamp="$VENV/.attune-installed"
want=$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    log "installing attune-console (editable) with test and dev extras into $VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
    "$VENV/bin/python" -m pip install -q -e "$ROOT[test,dev]"
    echo "$want" >"$stamp"
fi

# --- 3. docker daemon -------------------------------------------------------------------
DOCKER=${DOCKER:-$(command -v /usr/bin/docker || command -v docker)}
export DOCKER
if ! "$DOCKER" info >/dev/null 2>&1; then
    if [ -z "${DOCKER_HOST:-}" ] && [ "$(id -u)" -eq 0 ] && command -v dockerd >/dev/null 2>&1; then
        log "starting dockerd (log: /tmp/attune-dockerd.log)"
        setsid nohup dockerd >/tmp/attune-dockerd.log 2>&1 </dev/null &
        for _ in $(seq 1 60); do
            "$DOCKER" info >/dev/null 2>&1 && break
            sleep 1
        done
    fi
    "$DOCKER" info >/dev/null 2>&1 || die "no Docker daemon answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start one (dockerd &) and re-run"
fi

# --- 4. base images for the demo workspace ------------------------------------------------
if [ -x "$ROOT/demo-workspace/scripts/bootstrap-images.sh" ]; then
    "$ROOT/demo-workspace/scripts/bootstrap-images.sh" >&2
fi
log "ready"
