#!/usr/bin/env bash
# System packages the code sandbox (r1ci_core.sandbox) needs: bubblewrap for the isolation, and a
# world-readable interpreter with the packages task solutions use (Debian's python3 + numpy/sympy).
# Idempotent; run as root (or with sudo available).  Called from .ci/run.
set -euo pipefail

pkgs=()
command -v bwrap >/dev/null 2>&1 || pkgs+=(bubblewrap)
[ -x /usr/bin/python3 ] || pkgs+=(python3)
/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1 || pkgs+=(python3-numpy)
/usr/bin/python3 -c 'import sympy' >/dev/null 2>&1 || pkgs+=(python3-sympy)

if [ ${#pkgs[@]} -gt 0 ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends "${pkgs[@]}"
fi

# Unprivileged user namespaces must be allowed (bwrap runs as an unprivileged uid).
if [ -r /proc/sys/kernel/unprivileged_userns_clone ] && [ "$(cat /proc/sys/kernel/unprivileged_userns_clone)" = "0" ]; then
    echo "warning: kernel.unprivileged_userns_clone=0; the sandbox needs it (sysctl -w kernel.unprivileged_userns_clone=1)" >&2
fi
if [ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 1)" = "0" ]; then
    echo "warning: user.max_user_namespaces=0; the sandbox needs user namespaces" >&2
fi
bwrap --version
