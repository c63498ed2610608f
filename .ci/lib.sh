# Shared by the .ci scripts (sourced, not run): progress lines, errors, Debian packages.
# shellcheck shell=bash

# Progress goes to stderr so that stdout stays free for whatever a caller pipes.
log() { printf '%s: %s\n' "${0##*/}" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Packages among "$@" that dpkg does not know as installed.
missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' \
            || printf '%s\n' "$pkg"
    done
}

# Install the packages among "$@" that are missing, from Debian's apt repositories; leading
# words that start with "-" are apt-get options (--no-install-recommends).
# CI machines start fresh, so everything the tests need must be installable from here.
apt_install() {
    local missing options=()
    while [ "$#" -gt 0 ] && [ "${1#-}" != "$1" ]; do options+=("$1"); shift; done
    missing=$(missing_packages "$@")
    [ -n "$missing" ] || return 0
    command -v apt-get >/dev/null || die "needs the packages $(echo "$missing" | xargs) (no apt-get here)"
    [ "$(id -u)" -eq 0 ] || die "needs the packages $(echo "$missing" | xargs): install them as root"
    log "installing $(echo "$missing" | xargs)"
    apt-get update -qq >&2
    # shellcheck disable=SC2086  # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" $missing >&2 </dev/null
}
