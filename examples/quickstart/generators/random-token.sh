#!/bin/sh
# 32 random bytes, base64: a token for every declared file.
set -eu
for name in token; do
  head -c 32 /dev/urandom | base64 > "$out/$name"
done
