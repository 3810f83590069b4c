#!/usr/bin/env bash
# What `convc::network!` costs at compile time: for each spec, a crate that
# declares it (and calls `new`), built in release; prints the lines of the
# generated code (`convc emit-rust`), the build time of that crate alone
# (dependencies already built) and the cold build time of everything.
#
#   bash benches/compile_cost.sh [spec ...]      (default: lenet5 fashion_tf alexnet)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work="$root/target/compile-cost"
specs=("$@")
[ ${#specs[@]} -eq 0 ] && specs=(lenet5 fashion_tf alexnet)
mkdir -p "$work"
cargo build -q --release -p convc-compiler --manifest-path "$root/Cargo.toml"
printf '%-12s %10s %12s %14s\n' spec lines "crate (s)" "cold total (s)"
for spec in "${specs[@]}"; do
  dir="$work/$spec"
  mkdir -p "$dir/src"
  cat > "$dir/Cargo.toml" <<TOML
[package]
name = "compile-cost-${spec//_/-}"
version = "0.0.0"
edition = "2024"

[dependencies]
convc = { path = "$root", default-features = false }

[workspace]
TOML
  cat > "$dir/src/main.rs" <<RS
convc::network!(pub Net = "$root/specs/$spec.toml");
fn main() {
    let net = Net::new(0);
    println!("{} {}", Net::NAME, net.stages().len());
}
RS
  lines=$("$root/target/release/convc" emit-rust "$root/specs/$spec.toml" | wc -l)
  rm -rf "$dir/target"
  start=$(date +%s.%N)
  CARGO_TARGET_DIR="$dir/target" cargo build -q --release --offline --manifest-path "$dir/Cargo.toml"
  cold=$(echo "$(date +%s.%N) - $start" | bc)
  touch "$dir/src/main.rs"
  start=$(date +%s.%N)
  CARGO_TARGET_DIR="$dir/target" cargo build -q --release --offline --manifest-path "$dir/Cargo.toml"
  warm=$(echo "$(date +%s.%N) - $start" | bc)
  printf '%-12s %10s %12.1f %14.1f\n' "$spec" "$lines" "$warm" "$cold"
done
