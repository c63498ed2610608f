#!/usr/bin/env bash
# Build the dockyter-server image that dockyter-stack.yml runs (README.md, step 1).
#
#   bash docs/deploy/build-server-image.sh TAG [BASE]
#   bash docs/deploy/build-server-image.sh --source-sha256    the label a fresh build would carry
#
# BASE (default python:3.12-slim) is any glibc-based image with Python 3.11 or later; it
# needs no pip and no network. On this machine, pip downloads the wheels of
# dockyter[server] and its dependencies for BASE's Python and platform (asked from BASE
# itself), and builds dockyter's own wheel from this checkout; the image installs them with
# `pip --no-index`; the loopback check (swarm_isolation = "nodes") is compiled here with cc.
# The docker CLI copied in is $DOCKER_CLI, or the `docker` on PATH: a
# statically linked one runs on any base; Debian's (docker.io) needs a base whose C library
# is as new as the one it was built against (the build checks that it runs).
#
# Environment: PYTHON (a Python with pip for the downloads; default python3), DOCKER_CLI,
# DOCKER (the docker command that builds; default docker), PIP_INDEX_URL and the like as pip reads them.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
source_dir=$(cd "$here/../.." && pwd)
die() { printf 'build-server-image: error: %s\n' "$*" >&2; exit 1; }

# What an image was built from, as its label io.dockyter.source-sha256: a checksum of every
# file of the package, pyproject.toml and this recipe (sha256sum of each, in byte order, then
# of that list).
source_sha256() {
    (cd "$source_dir" && { printf '%s\n' pyproject.toml docs/deploy/Dockerfile docs/deploy/build-server-image.sh;
        find dockyter -type f ! -path '*/__pycache__/*'; } \
        | LC_ALL=C sort | xargs -d '\n' sha256sum | sha256sum | cut -c1-64)
}
if [ "${1:-}" = --source-sha256 ]; then source_sha256; exit 0; fi

[ $# -ge 1 ] && [ $# -le 2 ] || die "usage: bash docs/deploy/build-server-image.sh TAG [BASE]"
tag=$1
base=${2:-python:3.12-slim}
python=${PYTHON:-python3}
read -r -a docker <<<"${DOCKER:-docker}"
cli=${DOCKER_CLI:-$(command -v docker || true)}

[ -n "$cli" ] && [ -x "$cli" ] || die "no docker CLI to put in the image: set DOCKER_CLI to one"
"$python" -m pip --version >/dev/null 2>&1 || die "$python has no pip: set PYTHON to a Python that has one"

# What BASE runs: Python version, C library and machine, for pip to pick matching wheels.
facts=$("${docker[@]}" run --rm --entrypoint python3 "$base" -c '
import platform, sys
libc, version = platform.libc_ver()
print(f"{sys.version_info[0]}.{sys.version_info[1]}", libc, version, platform.machine())
' 2>&1) || die "cannot run python3 in $base: $(printf '%s\n' "$facts" | grep -v -e "^Run 'docker" -e '^$' | tail -n 1)"
read -r py_version libc libc_version machine <<<"$facts"
[ "$libc" = glibc ] || die "$base does not use glibc (${libc:-unknown C library}): no wheels are prepared for it"
[ "${py_version#3.}" -ge 11 ] 2>/dev/null || die "$base has Python $py_version; dockyter-server needs 3.11 or later"

context=$(mktemp -d "${TMPDIR:-/tmp}/dockyter-server-image.XXXXXX")
trap 'rm -rf "$context"' EXIT
mkdir "$context/wheels"

# Every manylinux level up to BASE's glibc: pip does not widen a manylinux_2_N tag by itself.
platforms=()
for minor in $(seq 17 "${libc_version#2.}"); do platforms+=(--platform "manylinux_2_${minor}_$machine"); done
platforms+=(--platform "manylinux2014_$machine")

"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$context/wheels" "$source_dir" \
    || die "could not build the dockyter wheel from $source_dir"
wheel=$(ls "$context"/wheels/dockyter-*.whl)
"$python" -m pip download --quiet --disable-pip-version-check --dest "$context/wheels" \
    --only-binary=:all: --implementation cp --python-version "$py_version" --abi "cp${py_version/./}" \
    "${platforms[@]}" "dockyter[server] @ file://$wheel" pip \
    || die "could not download the wheels of dockyter[server] for Python $py_version on $machine"

# The loopback check of swarm_isolation = "nodes", built here for BASE's machine (it needs no C library).
[ "$(uname -m)" = "$machine" ] || die "this machine is $(uname -m) and $base is $machine: build on a $machine machine"
PYTHONPATH="$source_dir${PYTHONPATH:+:$PYTHONPATH}" "$python" -m dockyter.server.swarm.loopbackcheck "$context/loopback-only" >/dev/null \
    || die "could not build the loopback check (it needs a C compiler, cc)"
cp -L "$cli" "$context/docker"
cp "$here/Dockerfile" "$context/Dockerfile"
out=$("${docker[@]}" build --quiet --build-arg "BASE=$base" --label "io.dockyter.source-sha256=$(source_sha256)" \
    --tag "$tag" "$context" 2>&1) \
    || { printf '%s\n' "$out" >&2; die "docker build of $tag failed (output above)"; }
# The classic builder keeps the install stage as an untagged image; BuildKit keeps none.
"${docker[@]}" image prune --force --filter label=io.dockyter.build-stage=install >/dev/null 2>&1 || true
printf '%s\n' "$tag"
