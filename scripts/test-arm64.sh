#!/usr/bin/env bash
# The runtime on 64-bit ARM: cross build and the CTest suite under qemu-user (scripts/test-cross.sh).
exec "$(dirname "$0")/test-cross.sh" arm64
