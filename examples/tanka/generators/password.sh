#!/bin/sh
# Writes a random password (32 hex characters) to $out/password.
# Runs in the generator sandbox: no network, only $out writable.
set -eu
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/password"
