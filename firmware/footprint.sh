#!/usr/bin/env bash
# Builds the firmware (thumbv7em-none-eabihf, opt-level "z", LTO, one codegen unit, panic abort)
# and prints flash (.text + .rodata) and static RAM (.data + .bss) of each binary, as in
# BENCHMARKS.md. Needs `llvm-size` (Debian: llvm) or `arm-none-eabi-size`.
set -euo pipefail
cd "$(dirname "$0")"
SIZE=$(command -v llvm-size || command -v arm-none-eabi-size || true)
if [ -z "$SIZE" ]; then
  echo "no llvm-size or arm-none-eabi-size: apt-get install llvm" >&2
  exit 1
fi
# The heap client twice: with MQTT 5 compiled in, and as a 3.1.1 device ships it; then the
# rest (fixed storage, no allocator: `heap` off).
cargo build -q --release --features heap,mqtt5 --bin footprint
cp target/thumbv7em-none-eabihf/release/footprint target/thumbv7em-none-eabihf/release/footprint_mqtt5
cargo build -q --release --features heap --bin footprint
cargo build -q --release
echo "| binary | .text | .rodata | flash (.text + .rodata) | .data | .bss | static RAM (.data + .bss) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
for bin in baseline footprint footprint_fixed footprint_mqtt5 footprint_minimq footprint_minimq_128 footprint_rust_mqtt footprint_rust_mqtt_128 temperature button alarm; do
  "$SIZE" -A "target/thumbv7em-none-eabihf/release/$bin" | awk -v bin="$bin" '
    $1 == ".text" { t = $2 } $1 == ".rodata" { r = $2 } $1 == ".data" { d = $2 } $1 == ".bss" { b = $2 }
    END { printf "| %s | %d | %d | %d | %d | %d | %d |\n", bin, t, r, t + r, d, b, d + b }'
done
