#!/usr/bin/env bash
# Install Debian's prometheus package (server + promtool) without starting its service.
# Idempotent: does nothing when both binaries are already on PATH.
set -euo pipefail
if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
  exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  # Block the package's service from starting (0.0.0.0:9090); tests start their own on loopback.
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 755 /usr/sbin/policy-rc.d
  guard=1
fi
cleanup() { if [ -n "$guard" ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  prometheus >/dev/null
prometheus --version 2>&1 | head -n1
