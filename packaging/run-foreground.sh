#!/bin/sh
# Builds giambiod (in build/release) and runs it in the foreground with
# conf/giambio.conf. Extra arguments go to giambiod.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh packaging/install-deps.sh
[ -x configure ] || autoreconf -fi
mkdir -p build/release
cd build/release
[ -f Makefile ] || ../../configure --disable-tests
make -j"$(nproc)" src/giambiod
exec ./src/giambiod -c "$top/conf/giambio.conf" "$@"
