#!/usr/bin/env bash
# Build the pack binaries in Docker (Debian bookworm, glibc 2.36) and put them where the packs expect
# them: packs/core/sensors/attune-core-timer-sensor. Then `docker-compose up` (init-packs) copies them
# into the packs_data volume; no service image is rebuilt.
#
# Environment: DOCKER (client; default: the first docker CLI that builds with BuildKit),
# PACK_BUILDER_IMAGE (tag, default attune-pack-builder), RUST_IMAGE / RUNTIME_IMAGE (base images;
# default: the values in .env written by bootstrap-images.sh, else the official images),
# ATTUNE_BUILD_ID (baked into the binary).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(dirname "$here")"
cd "$workspace"

# A docker CLI that can build with BuildKit: the first on PATH (then /usr/bin/docker) that has the
# buildx plugin or is older than 23 (20.10's CLI has BuildKit built in; newer ones need buildx).
buildkit_docker() {
    local candidate major
    for candidate in $(type -ap docker) /usr/bin/docker; do
        [[ -x "$candidate" ]] || continue
        if "$candidate" buildx version >/dev/null 2>&1; then
            echo "$candidate"
            return
        fi
        major="$("$candidate" version --format '{{.Client.Version}}' 2>/dev/null || true)"
        major="${major%%.*}"
        if [[ "$major" =~ ^[0-9]+$ ]] && ((major < 23)); then
            echo "$candidate"
            return
        fi
    done
    echo docker
}
DOCKER="${DOCKER:-$(buildkit_docker)}"
read -r -a docker_cmd <<<"$DOCKER"
image="${PACK_BUILDER_IMAGE:-attune-pack-builder}"

# Read a KEY=value line of .env without sourcing it (it is data, not a script).
env_value() {
    [[ -f .env ]] || return 0
    sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?$1=[\"']?([^\"']*)[\"']?[[:space:]]*$/\\2/p" .env | tail -n 1
}
rust_image="${RUST_IMAGE:-$(env_value RUST_IMAGE)}"
runtime_image="${RUNTIME_IMAGE:-$(env_value RUNTIME_IMAGE)}"
rust_image="${rust_image:-rust:1.83-bookworm}"
runtime_image="${runtime_image:-debian:bookworm-slim}"

echo "build-pack-binaries: building $image (RUST_IMAGE=$rust_image RUNTIME_IMAGE=$runtime_image)"
DOCKER_BUILDKIT=1 "${docker_cmd[@]}" build \
    -f docker/Dockerfile.pack-binaries \
    --build-arg "RUST_IMAGE=$rust_image" \
    --build-arg "RUNTIME_IMAGE=$runtime_image" \
    --build-arg "ATTUNE_BUILD_ID=${ATTUNE_BUILD_ID:-dev}" \
    -t "$image" .

container="attune-pack-tmp-$$-$RANDOM"
"${docker_cmd[@]}" create --name "$container" "$image" >/dev/null
trap '"${docker_cmd[@]}" rm "$container" >/dev/null 2>&1 || true' EXIT

mkdir -p packs/core/sensors
"${docker_cmd[@]}" cp "$container:/pack-binaries/attune-core-timer-sensor" packs/core/sensors/
chmod +x packs/core/sensors/attune-core-timer-sensor
echo "build-pack-binaries: wrote packs/core/sensors/attune-core-timer-sensor"
