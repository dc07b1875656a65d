#!/usr/bin/env bash
# Install the Debian packages listed in scripts/system-packages.txt that are missing.
# Needs root (CI runs as root); without it, names what is missing and fails, so a test
# never finds a component absent and skips silently.
set -euo pipefail
cd "$(dirname "$0")/.."
missing=()
while read -r package probe; do
  case "$package" in ''|'#'*) continue ;; esac
  [ -e "$probe" ] || missing+=("$package")
done < scripts/system-packages.txt
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages (install as root): ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
if ! { apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  echo "setup: apt-get install ${missing[*]} failed: see the output above" >&2
  exit 1
fi
rm -f "$log"
