# Sourced by scripts/demo, scripts/test and scripts/bench: installs what snapfs needs on a
# fresh Debian machine (Debian packages with apt-get, Python packages into .venv) and puts
# .venv/bin first on PATH. Idempotent and quiet when everything is already there.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

need_debs() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
            || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing Debian packages: ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

need_venv() {
    local extras="$1"
    local py
    py="$(command -v python3.11 || command -v python3)"
    if [ ! -x .venv/bin/python ]; then
        echo "creating .venv with $py" >&2
        "$py" -m venv .venv
    fi
    local stamp
    stamp="$(cat pyproject.toml | sha256sum | cut -c1-16)-$extras"
    if [ "$(cat .venv/.snapfs-stamp 2>/dev/null)" != "$stamp" ]; then
        echo "installing Python packages into .venv ($extras)" >&2
        .venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
        if ! .venv/bin/python -m pip install -q -e ".[$extras]" >.venv/pip.log 2>&1; then
            grep -v "^WARNING: Location" .venv/pip.log >&2
            echo "pip install failed (log: .venv/pip.log)" >&2
            return 1
        fi
        echo "$stamp" > .venv/.snapfs-stamp
    fi
    # Byte-compile our own modules as a regular install would: an editable install under
    # PYTHONDONTWRITEBYTECODE would otherwise recompile them at every command (~70 ms).
    .venv/bin/python -m compileall -q snapfs tui >/dev/null
    export PATH="$ROOT/.venv/bin:$PATH"
    export VIRTUAL_ENV="$ROOT/.venv"
}
