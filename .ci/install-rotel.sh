#!/usr/bin/env bash
# Install rotel, a small OpenTelemetry collector written in Rust and published on PyPI as a
# wheel with the binary inside, into its own virtualenv; print the rotel-agent path (the only
# line on stdout). Idempotent: a second run only checks and prints.
#
# Why its own venv with Debian's /usr/bin/python3: rotel-agent links against libpython3.X.so
# of the wheel's Python (for its optional Python processors). A pyenv or uv Python usually has
# no shared library; Debian's libpython3.X package provides exactly the one it needs.
#
# Env: ROTEL_VERSION (default 0.0.1a15: only pre-releases exist, so the pin is exact)
#      ROTEL_VENV    (default ~/.cache/mlprobe-ci/rotel-$ROTEL_VERSION)
set -euo pipefail
version="${ROTEL_VERSION:-0.0.1a15}"
venv="${ROTEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/mlprobe-ci/rotel-$version}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

quietly() {  # run a command; show its output only when it fails
  if ! "$@" >"$log" 2>&1; then
    echo "install-rotel.sh: failed: $*" >&2
    cat "$log" >&2
    exit 1
  fi
}
apt_install() {
  quietly $SUDO apt-get update -qq
  quietly $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "$@"
}
agent_path() { find "$venv" -path '*/site-packages/rotel/rotel-agent' -type f 2>/dev/null | head -n1; }

if [ -z "$(agent_path)" ]; then
  [ -x /usr/bin/python3 ] || apt_install python3
  pyver="$(/usr/bin/python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  if ! /usr/bin/python3 -c 'import ensurepip' 2>/dev/null \
     || ! ldconfig -p | grep -q "libpython$pyver\.so\.1\.0"; then
    apt_install python3-venv "libpython$pyver"
  fi
  rm -rf "$venv"
  quietly /usr/bin/python3 -m venv "$venv"
  quietly "$venv/bin/pip" install --disable-pip-version-check "rotel==$version"
fi

agent="$(agent_path)"
if [ -z "$agent" ]; then
  echo "install-rotel.sh: rotel-agent not found in $venv after installing" >&2
  exit 1
fi
if ldd "$agent" | grep -q 'not found'; then
  echo "install-rotel.sh: $agent has unresolved libraries:" >&2
  ldd "$agent" | grep 'not found' >&2
  exit 1
fi
echo "$agent"
