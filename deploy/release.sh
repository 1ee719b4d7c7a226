#!/usr/bin/env bash
# Release build of sluice, ready to audit for as long as it runs anywhere:
#   - the binary carries its own dependency list (cargo auditable), so `cargo audit bin
#     sluice` (or `rust-audit-info sluice`) can check any deployed copy against the RustSec
#     advisories of the day;
#   - a CycloneDX SBOM of the same dependency tree is written beside it;
#   - `cargo deny check advisories` must pass (it fetches the RustSec database: run this
#     where the network allows it), as must the offline checks CI runs.
#
# Usage: deploy/release.sh [OUT_DIR]   (default: dist/)
# Needs: cargo install --locked cargo-auditable cargo-cyclonedx cargo-deny
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
for tool in cargo-auditable cargo-cyclonedx cargo-deny; do
  command -v "$tool" >/dev/null || {
    echo "release: $tool is missing (cargo install --locked cargo-auditable cargo-cyclonedx cargo-deny)" >&2
    exit 1
  }
done

if [ "${SLUICE_RELEASE_SKIP_ADVISORIES:-0}" = 1 ]; then
  echo "release: advisories NOT checked (SLUICE_RELEASE_SKIP_ADVISORIES=1)" >&2
  cargo deny check licenses bans sources
else
  cargo deny check
fi

# The README's setup builds the same way, so after it this step only checks that the build is
# fresh. After a plain `cargo build --release`, only the workspace's own crates are built again
# (cargo auditable wraps rustc for workspace members alone): dependencies are reused.
cargo auditable build --release --locked --bin sluice
cargo cyclonedx --manifest-path Cargo.toml --format json --spec-version 1.5 --override-filename sluice.cdx --no-build-deps --quiet

mkdir -p "$out"
cp target/release/sluice "$out/sluice"
mv sluice.cdx.json "$out/sluice.cdx.json"
rm -f bench/sluice.cdx.json crates/sluice-mock/sluice.cdx.json
version=$("$out/sluice" --version)
(cd "$out" && sha256sum sluice sluice.cdx.json > SHA256SUMS)
echo "release: $version in $out/ (sluice, sluice.cdx.json, SHA256SUMS)"
