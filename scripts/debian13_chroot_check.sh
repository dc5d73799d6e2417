#!/usr/bin/env bash
# Runs the README's set-up commands on Debian 13 (glibc 2.41) from a Debian 12 machine of this kind: a debootstrap'd
# trixie root with the machine's Python 3.11 copied in, a clean clone of this repository, then
#   bash scripts/install.sh && .venv/bin/gru4rec pipeline run        (and, with --tests, the test command)
# inside it. install.sh takes its glibc >= 2.39 path there (ml-metadata / TFDV 1.21 wheels); the check ends by
# listing how the installed versions differ from this machine's .venv (only ml-metadata and TFDV may).
# Needs root, debootstrap and network access to the Debian and Python package registries; ~3 GB in ROOT.
# Usage: sudo bash scripts/debian13_chroot_check.sh [ROOT (default /tmp/gru4rec-trixie)] [--tests]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$(pwd)"
ROOT="${1:-/tmp/gru4rec-trixie}"
TESTS="${2:-}"
PYDIR="$(python3 -c 'import sys; print(sys.base_prefix)')"

if [ ! -x "$ROOT/usr/bin/g++" ]; then
  debootstrap --variant=minbase --include=ca-certificates,libssl3t64,zlib1g,libffi8,libsqlite3-0,libbz2-1.0,\
liblzma5,libreadline8t64,libncursesw6,git,procps,gcc,g++,make,libc6-dev trixie "$ROOT" http://deb.debian.org/debian
fi
mkdir -p "$ROOT$PYDIR" "$ROOT/etc/xdg" "$ROOT/opt" "$ROOT/work"
[ -x "$ROOT$PYDIR/bin/python3" ] || cp -a "$PYDIR/." "$ROOT$PYDIR/"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"
cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/ca-certificates.crt"  # this machine's registries' CA
[ -f /etc/pip.conf ] && cp /etc/pip.conf "$ROOT/etc/pip.conf"
[ -d /etc/xdg/pip ] && cp -a /etc/xdg/pip "$ROOT/etc/xdg/"
mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
mountpoint -q "$ROOT/dev" || mount --bind /dev "$ROOT/dev"
if [ -d /opt ] && ! mountpoint -q "$ROOT/opt"; then mount --bind /opt "$ROOT/opt"; fi
rm -rf "$ROOT/work/repo" && git clone -q "$REPO" "$ROOT/work/repo"

chroot "$ROOT" env -i PATH="$PYDIR/bin:/usr/local/bin:/usr/bin:/bin" HOME=/root LANG=C.UTF-8 \
  PIP_FIND_LINKS="${PIP_FIND_LINKS:-}" bash -c "
    set -euo pipefail
    cd /work/repo
    echo \"debian13_chroot_check: \$(. /etc/os-release; echo \$PRETTY_NAME), \$(getconf GNU_LIBC_VERSION)\"
    bash scripts/install.sh && .venv/bin/gru4rec pipeline run
    if [ '$TESTS' = --tests ]; then bash scripts/install.sh && .venv/bin/python -m pytest -q tests; fi
    .venv/bin/python -m pip freeze --exclude-editable > /tmp/freeze.txt"
if [ -x .venv/bin/python ]; then
  echo "debian13_chroot_check: installed versions that differ from this machine's .venv:"
  diff <(.venv/bin/python -m pip freeze --exclude-editable | sort) <(sort "$ROOT/tmp/freeze.txt") || true
fi
