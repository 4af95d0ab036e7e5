#!/bin/sh
# The password is whatever was answered to the prompt.
set -eu
cp "$prompts/password" "$out/password"
