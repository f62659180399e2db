# Shared helpers for FaDO's scripts. Source it; do not run it.
# Every step is idempotent: it checks before it acts.

set -euo pipefail

FADO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FADO_CACHE="${FADO_CACHE:-$HOME/.cache/fado}"
# Builds live outside the clone so a fresh clone (and CI) reuses them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FADO_CACHE/target}"
export PATH="$HOME/.cargo/bin:$PATH"

# Cargo decides what to rebuild by file times and names a workspace's own
# files relative to its root, so two clones sharing one target directory
# (a checkout and CI's clean clone) look alike to it: after a build from the
# other clone, edits here that are older than that build count as built.
# When the last build through these scripts came from another clone, mark
# this clone's files as new, so cargo rebuilds the workspace's own crates
# (their dependencies stay built).
claim_target_dir() {
    local stamp="$CARGO_TARGET_DIR/.fado-workspace"
    [ "$(cat "$stamp" 2>/dev/null || true)" = "$FADO_ROOT" ] && return 0
    if [ -d "$CARGO_TARGET_DIR/release" ] || [ -d "$CARGO_TARGET_DIR/wasm32-wasip2" ]; then
        say "the build cache was last used by another clone; rebuilding this clone's crates"
        find "$FADO_ROOT" \( -path "$FADO_ROOT/.git" -o -path "$FADO_ROOT/target" \) -prune \
            -o -type f -print0 | xargs -0 -r touch
    fi
    mkdir -p "$CARGO_TARGET_DIR"
    printf '%s\n' "$FADO_ROOT" >"$stamp"
}

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command as root: directly when we are root, through sudo otherwise.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (install sudo or run as root)"; fi
}

# Runs a command as the postgres OS user.
as_postgres() {
    if [ "$(id -un)" = postgres ]; then "$@"
    elif [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"
    else sudo -u postgres "$@"; fi
}

have() { command -v "$1" >/dev/null 2>&1; }

is_debian_like() { [ -r /etc/os-release ] && grep -qiE '^(ID|ID_LIKE)=.*(debian|ubuntu)' /etc/os-release; }

# apt_install PKG...: installs the packages that are not installed yet.
apt_install() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! is_debian_like; then
        die "missing packages: ${missing[*]}. This script installs them on Debian/Ubuntu; elsewhere install the equivalents (PostgreSQL >= 13 server, Redis >= 6, a C toolchain, pkg-config, SQLite 3 development files, Mosquitto 2, MariaDB >= 10.4 server) and re-run."
    fi
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # Refresh the package lists only when an install fails with stale lists.
    as_root apt-get install -y --no-install-recommends "${missing[@]}" </dev/null \
        || { as_root apt-get update </dev/null && as_root apt-get install -y --no-install-recommends "${missing[@]}" </dev/null; }
}
