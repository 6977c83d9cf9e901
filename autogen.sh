#!/bin/sh
# Generates configure and Makefile.in (never committed) and the TAP driver.
set -e
cd "$(dirname "$0")"
mkdir -p build-aux
autoreconf -fi
cp -f "$(automake --print-libdir)/tap-driver.sh" build-aux/tap-driver.sh
