#!/usr/bin/env bash
# Make sure the two base images the demo Dockerfiles build FROM exist on the local daemon, and record
# their names in demo-workspace/.env (RUST_IMAGE=..., RUNTIME_IMAGE=...), which compose and
# attune-console both read.
#
# For each base (rust, runtime), the first that works wins:
#   0. the image .env already names (RUST_IMAGE= / RUNTIME_IMAGE=), if it is on the daemon;
#   1. the official image (rust:1.83-bookworm / debian:bookworm-slim) is already on the daemon;
#   2. our local stand-in (attune-local/rust:bookworm / attune-local/debian:bookworm-slim) already exists;
#   3. `docker pull` of the official image succeeds within ATTUNE_PULL_TIMEOUT seconds (default 20;
#      set ATTUNE_NO_PULL=1 to skip pulling, e.g. on a machine without a registry);
#   4. build the stand-in from Debian packages with mmdebstrap and `docker import` it.
# Steps 1-2 make a second run take about a second. The stand-in rust image carries Debian bookworm's
# rustc 1.63 / cargo 0.66, with CARGO_HOME=/usr/local/cargo so the Dockerfiles' cache-mount paths hold.
#
# Environment: DOCKER (client to use, default `docker`), ATTUNE_PULL_TIMEOUT, ATTUNE_NO_PULL,
# RUST_IMAGE_OFFICIAL / RUNTIME_IMAGE_OFFICIAL / RUST_IMAGE_LOCAL / RUNTIME_IMAGE_LOCAL (names),
# DEBIAN_MIRROR (mirror for mmdebstrap; default: mmdebstrap's own default).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(dirname "$here")"
env_file="$workspace/.env"

DOCKER="${DOCKER:-docker}"
read -r -a docker_cmd <<<"$DOCKER"
pull_timeout="${ATTUNE_PULL_TIMEOUT:-20}"

rust_official="${RUST_IMAGE_OFFICIAL:-rust:1.83-bookworm}"
runtime_official="${RUNTIME_IMAGE_OFFICIAL:-debian:bookworm-slim}"
rust_local="${RUST_IMAGE_LOCAL:-attune-local/rust:bookworm}"
runtime_local="${RUNTIME_IMAGE_LOCAL:-attune-local/debian:bookworm-slim}"

say() { printf 'bootstrap-images: %s\n' "$*"; }
die() { printf 'bootstrap-images: error: %s\n' "$*" >&2; exit 1; }

if ! "${docker_cmd[@]}" info >/dev/null 2>&1; then
    die "no Docker daemon answers to '$DOCKER info'. Start it (e.g. 'dockerd &' as root) and run again."
fi

# Several engineers/CI jobs may run this at once on one daemon: serialise, so one builds and the
# others then find the image.
lock="${TMPDIR:-/tmp}/attune-bootstrap-images.lock"
exec 9>"$lock"
flock 9

exists() { "${docker_cmd[@]}" image inspect "$1" >/dev/null 2>&1; }

try_pull() {
    if [[ "${ATTUNE_NO_PULL:-}" == "1" ]]; then
        return 1
    fi
    say "trying: $DOCKER pull $1 (timeout ${pull_timeout}s)"
    if timeout "$pull_timeout" "${docker_cmd[@]}" pull -q "$1" >/dev/null 2>&1; then
        return 0
    fi
    say "pull of $1 failed or timed out; building a local stand-in"
    return 1
}

# mmdebstrap writes a root-fs tarball to stdout; `docker import` reads it from stdin.
build_standin() {
    local name="$1" variant="$2" include="$3"
    shift 3
    command -v mmdebstrap >/dev/null 2>&1 || die "mmdebstrap is missing: apt-get install -y mmdebstrap"
    local mmargs=(--quiet "--variant=$variant" --format=tar)
    if [[ -n "$include" ]]; then
        mmargs+=("--include=$include")
    fi
    local mirror=()
    if [[ -n "${DEBIAN_MIRROR:-}" ]]; then
        mirror=("$DEBIAN_MIRROR")
    fi
    say "building $name with mmdebstrap --variant=$variant${include:+ --include=$include} bookworm (a few minutes)"
    local start=$SECONDS
    local changes=()
    local c
    for c in "$@"; do
        changes+=(--change "$c")
    done
    # Import under a temporary tag and only tag the real name once the whole pipeline succeeded, so a
    # failed mmdebstrap never leaves a truncated image that a later run would take as "present".
    local tmp_tag="${name%%:*}:bootstrap-partial-$$"
    if ! mmdebstrap "${mmargs[@]}" bookworm - "${mirror[@]}" \
        | "${docker_cmd[@]}" import "${changes[@]}" \
            --message "attune-console local stand-in (mmdebstrap bookworm $variant)" - "$tmp_tag" >/dev/null; then
        "${docker_cmd[@]}" rmi "$tmp_tag" >/dev/null 2>&1 || true
        die "building $name failed (see mmdebstrap's messages above; is a Debian mirror reachable?)"
    fi
    "${docker_cmd[@]}" tag "$tmp_tag" "$name"
    "${docker_cmd[@]}" rmi "$tmp_tag" >/dev/null
    say "built $name in $((SECONDS - start))s"
}

std_path="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The value of KEY in .env, if any (read as data, never sourced).
recorded() {
    [[ -f "$env_file" ]] || return 0
    sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$1=[\"']?([^\"']*)[\"']?[[:space:]]*\$/\\2/p" "$env_file" | tail -n 1
}

# pick KIND RECORDED OFFICIAL LOCAL VARIANT INCLUDE CHANGES... -> sets $chosen to the image name to use.
# An image already named in .env (the user's choice or an earlier run's) wins while it exists.
pick() {
    local kind="$1" recorded_name="$2" official="$3" local_name="$4" variant="$5" include="$6"
    shift 6
    if [[ -n "$recorded_name" ]] && exists "$recorded_name"; then
        say "$kind: using $recorded_name (named in .env, present)"
        chosen="$recorded_name"
        return
    fi
    if [[ -n "$recorded_name" ]]; then
        say "$kind: $recorded_name (named in .env) is not on this daemon; choosing again"
    fi
    if exists "$official"; then
        say "$kind: using $official (already present)"
        chosen="$official"
    elif exists "$local_name"; then
        say "$kind: using local stand-in $local_name (already present)"
        chosen="$local_name"
    elif try_pull "$official"; then
        say "$kind: pulled $official"
        chosen="$official"
    else
        build_standin "$local_name" "$variant" "$include" "$@"
        chosen="$local_name"
    fi
}

chosen=""
pick rust "$(recorded RUST_IMAGE)" "$rust_official" "$rust_local" apt "rustc,cargo,gcc,libc6-dev,ca-certificates" \
    "ENV CARGO_HOME=/usr/local/cargo" \
    "ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
    "WORKDIR /" \
    'CMD ["bash"]'
rust_image="$chosen"
pick runtime "$(recorded RUNTIME_IMAGE)" "$runtime_official" "$runtime_local" minbase "" \
    "ENV $std_path" \
    "WORKDIR /" \
    'CMD ["bash"]'
runtime_image="$chosen"

# Record the names, keeping every other line a user put in .env.
tmp="$(mktemp "$workspace/.env.XXXXXX")"
if [[ -f "$env_file" ]]; then
    grep -v -E '^[[:space:]]*(export[[:space:]]+)?(RUST_IMAGE|RUNTIME_IMAGE)=' "$env_file" >"$tmp" || true
fi
printf 'RUST_IMAGE=%s\nRUNTIME_IMAGE=%s\n' "$rust_image" "$runtime_image" >>"$tmp"
if [[ -f "$env_file" ]] && cmp -s "$tmp" "$env_file"; then
    rm -f "$tmp"
    say "$env_file unchanged (RUST_IMAGE=$rust_image RUNTIME_IMAGE=$runtime_image)"
else
    chmod 644 "$tmp"
    mv "$tmp" "$env_file"
    say "wrote $env_file: RUST_IMAGE=$rust_image RUNTIME_IMAGE=$runtime_image"
fi
