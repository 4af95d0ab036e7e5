#!/bin/sh
# Writes a login for the staging gate: $out/username and $out/password, both
# random (a fixed username would be redacted from every error message too).
set -eu
printf 'gate-%s' "$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$out/username"
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/password"
