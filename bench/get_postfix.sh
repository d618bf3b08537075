#!/bin/sh
# Unpack Debian's postfix package into bench/.postfix for its smtp-source (a C load
# generator) and smtp-sink (a C sink server): `apt-get download` and `dpkg -x`, so
# no Postfix daemon is installed or started. Used by `bench/run.py --generator
# smtp-source` and `--servers smtp-sink,...`; never by the tests.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target="${MAILIO_BENCH_POSTFIX:-$here/.postfix}"
if [ -x "$target/usr/sbin/smtp-source" ]; then
    echo "postfix tools already in $target"
    exit 0
fi
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && apt-get download postfix)
mkdir -p "$target"
dpkg -x "$scratch"/postfix_*.deb "$target"
echo "postfix tools unpacked in $target"
