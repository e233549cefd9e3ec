#!/usr/bin/env bash
# Refresh the scripts the docs site ships, so that a built site shows its formulas (KaTeX) and
# diagrams (mermaid) with no network: the pinned versions, from the npm registry.
set -euo pipefail
KATEX=0.19.1
MERMAID=11.17.2
cd "$(dirname "$0")"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(
  cd "$tmp"
  npm pack --silent "katex@$KATEX" "mermaid@$MERMAID" >/dev/null
  for tarball in *.tgz; do
    mkdir "${tarball%.tgz}"
    tar xzf "$tarball" -C "${tarball%.tgz}" --strip-components 1
  done
)
rm -rf katex mermaid
mkdir -p katex/fonts mermaid
# Browsers that run KaTeX read woff2, the first font format its style sheet lists.
cp "$tmp/katex-$KATEX"/{LICENSE,dist/katex.min.js,dist/katex.min.css} katex/
cp "$tmp/katex-$KATEX"/dist/fonts/*.woff2 katex/fonts/
cp "$tmp/mermaid-$MERMAID"/{LICENSE,dist/mermaid.min.js} mermaid/
