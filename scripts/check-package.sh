#!/usr/bin/env bash
# The published crate holds only what belongs in it (the library's sources, its manifest,
# README, CHANGELOG and licences), and `cargo publish --dry-run` packages and builds it.
#
#   scripts/check-package.sh [--allow-dirty]
set -euo pipefail
cd "$(dirname "$0")/.."

list=$(cargo package -p seathold --list "$@")
unexpected=$(printf '%s\n' "$list" | grep -Ev '^(src/.+\.rs|Cargo\.toml|Cargo\.toml\.orig|Cargo\.lock|README\.md|CHANGELOG\.md|LICENSE-MIT|LICENSE-APACHE|\.cargo_vcs_info\.json)$' || true)
if [ -n "$unexpected" ]; then
    echo "files that do not belong in the published crate:" >&2
    printf '%s\n' "$unexpected" >&2
    exit 1
fi
for needed in src/lib.rs README.md CHANGELOG.md LICENSE-MIT LICENSE-APACHE; do
    printf '%s\n' "$list" | grep -qx "$needed" || { echo "the package lacks $needed" >&2; exit 1; }
done
echo "package: $(printf '%s\n' "$list" | wc -l) files, all of them sources, manifest, docs or licences"
cargo publish -p seathold --dry-run "$@"
