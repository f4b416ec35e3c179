#!/usr/bin/env bash
# torchviz renders graphs with Graphviz's `dot` program, which pip cannot install.
# Install it with apt-get when we can; otherwise say exactly what to do.
set -euo pipefail
command -v dot >/dev/null 2>&1 && exit 0
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
  if [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; then
    echo "Graphviz 'dot' not found: installing the Debian package 'graphviz'..."
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq graphviz >/dev/null
    command -v dot >/dev/null 2>&1 && exit 0
  fi
fi
cat >&2 <<'MSG'
error: Graphviz's `dot` program is missing, and this script could not install it.
torchviz needs it to draw autograd graphs. Install it, then re-run:
  Debian/Ubuntu: sudo apt-get install graphviz
  macOS:         brew install graphviz
  conda:         conda install -c conda-forge graphviz
MSG
exit 1
