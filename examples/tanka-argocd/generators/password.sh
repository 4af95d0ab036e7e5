#!/bin/sh
# Writes a random password to $out/password (runs in the generator sandbox).
set -eu
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/password"
