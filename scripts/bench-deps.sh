#!/usr/bin/env bash
# Installs what make bench compares gorun with on a Debian machine: Open MPI
# (mpicc, mpirun) for the stencil's side-by-side figures. Not part of make
# test. It does nothing when they are present, and only warns when it
# cannot install them (not root, no apt-get): the benchmarks then print
# gorun's figures alone.
set -euo pipefail
command -v mpicc >/dev/null 2>&1 && command -v mpirun >/dev/null 2>&1 && exit 0
need=(openmpi-bin libopenmpi-dev)
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
	echo "bench-deps: no Open MPI; install it for the side-by-side figures (Debian: apt-get install ${need[*]})" >&2
	exit 0
fi
echo "bench-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
