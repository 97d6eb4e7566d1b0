#!/usr/bin/env bash
# Installs what VeriDL needs on Debian 12 (skips apt entirely when everything is already there).
#   bash scripts/install-deps.sh          build + test dependencies
#   bash scripts/install-deps.sh --bench  also Debian's PyTorch and Fashion-MNIST for bench/
set -euo pipefail
pkgs=(build-essential cmake libgtest-dev libgmock-dev libfmt-dev nlohmann-json3-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev python3)
# The IREE venv below needs Python's venv module (Debian's python3 ships it separately).
python3 -c 'import ensurepip, venv' 2>/dev/null || pkgs+=(python3-venv)
if [[ "${1:-}" == "--bench" ]]; then
  pkgs+=(python3-torch python3-numpy dataset-fashion-mnist libjemalloc2 libopenblas0-openmp)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
