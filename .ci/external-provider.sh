#!/usr/bin/env bash
# Builds and tests the example provider as a third party would: copied out
# of this repository into a module of its own that requires
# github.com/llorch/llorch (replaced by this checkout, as a release tag
# would provide it), so that it can use nothing but the public packages.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

mod=example.com/llorch-provider-vllm
cp -r examples/provider-vllm/. "$tmp/"
cd "$tmp"
grep -rl 'github.com/llorch/llorch/examples/provider-vllm' --include='*.go' . |
  xargs sed -i "s#github.com/llorch/llorch/examples/provider-vllm#$mod#g"
"${GO:-go}" mod init "$mod" >/dev/null 2>&1
"${GO:-go}" mod edit -require=github.com/llorch/llorch@v0.0.0 -replace=github.com/llorch/llorch="$repo"
"${GO:-go}" mod tidy >/dev/null
"${GO:-go}" vet ./...
"${GO:-go}" build -o "$tmp/llorch-provider-vllm" .
"${GO:-go}" test -count=1 ./...
echo "external-provider: $mod builds and passes its tests against this checkout"
