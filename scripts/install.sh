#!/usr/bin/env bash
# Installs the project and its pinned TFX 1.21 stack into a virtual environment (default: ./.venv).
#
# Both paths install the tested versions of requirements/tfx-constraints.txt (one constraints set):
# Debian 12 (glibc 2.36): ml-metadata 1.21 / TFDV 1.21 wheels need glibc >= 2.38, so ml-metadata 1.17.1 / TFDV 1.16.1
# and tfx go in with --no-deps (tfx-requirements-nodeps.txt). glibc >= 2.39 (Debian 13): tfx with the 1.21 ml-metadata
# / TFDV wheels (tfx-requirements-glibc239.txt), resolved under the same constraints; only those two differ.
# scripts/check_install_resolution.py checks both resolutions without installing anything.
# Idempotent: a second run with an unchanged requirements set returns in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${GRU4REC_VENV:-.venv}"
PY="${PYTHON:-python3}"
REQ=requirements
stamp="$VENV/.gru4rec-install-stamp"

# redis-server (the Debian package): the session service's Redis store and its tests start one on 127.0.0.1.
# Before the stamp check, so a machine with an up-to-date venv gets it too; nothing to do when it is on PATH. As root
# (CI) a failed apt-get fails the install; without root or apt-get it warns (only the Redis tests need it).
if ! command -v redis-server >/dev/null 2>&1; then
  apt_get=()
  if ! command -v apt-get >/dev/null 2>&1; then :
  elif [ "$(id -u)" -eq 0 ]; then apt_get=(env DEBIAN_FRONTEND=noninteractive apt-get -q -y)
  elif sudo -n true 2>/dev/null; then apt_get=(sudo -n env DEBIAN_FRONTEND=noninteractive apt-get -q -y)
  fi
  if [ "${#apt_get[@]}" -eq 0 ]; then
    echo "install.sh: warning: redis-server is missing and cannot be installed here (needs root and apt-get):" \
      "install it (sudo apt-get install redis-server) for the Redis session store and its tests" >&2
  else
    echo "install.sh: installing redis-server (Debian package)"
    if ! { "${apt_get[@]}" update >/dev/null && "${apt_get[@]}" install --no-install-recommends redis-server \
        >/dev/null; }; then
      echo "install.sh: apt-get could not install redis-server" >&2
      exit 1
    fi
  fi
fi

want="$(cat "$REQ"/*.txt setup.py | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "install.sh: $VENV is up to date"
  exit 0
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip=("$VENV/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q --upgrade "pip<27" "setuptools<81" wheel

# getconf prints one line ("glibc 2.36"): no `ldd --version | head`, whose early close can SIGPIPE under pipefail
glibc_minor="$(getconf GNU_LIBC_VERSION | sed -E 's/.*\.([0-9]+)$/\1/')"
echo "install.sh: glibc 2.$glibc_minor; installing the TFX 1.21 stack (a cold install takes about 5 minutes)"
if [ "$glibc_minor" -ge 39 ]; then
  "${pip[@]}" install -q -r "$REQ/tfx-requirements.txt" -r "$REQ/tfx-requirements-glibc239.txt" \
    -c "$REQ/tfx-constraints.txt"
else
  "${pip[@]}" install -q -r "$REQ/tfx-requirements.txt" -c "$REQ/tfx-constraints.txt"
  "${pip[@]}" install -q --no-deps -r "$REQ/tfx-requirements-nodeps.txt"
fi
"${pip[@]}" install -q -r "$REQ/dev.txt" -c "$REQ/tfx-constraints.txt"
"${pip[@]}" install -q --no-deps --no-build-isolation -e .
echo "$want" > "$stamp"
echo "install.sh: done ($VENV)"
