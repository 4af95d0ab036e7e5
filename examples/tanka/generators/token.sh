#!/bin/sh
# Writes an API token (`shop_` and 40 hex characters) to $out/token.
set -eu
printf 'shop_%s' "$(head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n')" > "$out/token"
