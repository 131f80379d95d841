#!/usr/bin/env bash
# Re-vendor the JavaScript that the built book serves from its own folder.
#
#     bash scripts/vendor_js.sh
#
# The book must load nothing from another host, so the files a page needs at run time
# are committed under book/_extra/vendor/ (Sphinx's html_extra_path copies book/_extra/
# to the root of the site, so they are served from _build/html/vendor/):
#
#   require.js                      requirejs (the module loader the widget manager needs)
#   html-manager/embed-amd.js       @jupyter-widgets/html-manager: draws saved ipywidgets
#   html-manager/*.woff2, *.woff    Font Awesome glyphs its CSS refers to
#
# Math needs no script: the build converts it to MathML (book/_ext/light_pages.py).
#
# Versions are pinned in package.json and locked in package-lock.json; to upgrade, change
# package.json, run `npm install`, run this script, rebuild the book and run
# tests/test_book_browser.py. node_modules/ is not committed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
NM="$ROOT/node_modules"
DEST="$ROOT/book/_extra/vendor"

npm ci --ignore-scripts --no-audit --no-fund

version() {  # version NAME -> the installed version of an npm package
    node -p "require('$NM/$1/package.json').version"
}

rm -rf "$DEST"
mkdir -p "$DEST/html-manager"

# require.js (a single file; its licence is in its header comment)
cp "$NM/requirejs/require.js" "$DEST/require.js"

# The HTML widget manager (AMD build: it finds widget modules through require.js).
# Browsers that run this bundle all read WOFF2 or WOFF, so the EOT/TTF/SVG copies of the
# Font Awesome fonts are left out; the CSS lists them only as fallbacks.
HM="$NM/@jupyter-widgets/html-manager/dist"
cp "$HM/embed-amd.js" "$HM/embed.js.LICENSE.txt" "$DEST/html-manager/"
cp "$HM"/*.woff2 "$HM"/*.woff "$DEST/html-manager/"

cat > "$DEST/VERSIONS.txt" <<EOF
Files copied from npm packages by scripts/vendor_js.sh (pinned in package.json and package-lock.json).

requirejs                      $(version requirejs)   MIT           require.js
@jupyter-widgets/html-manager  $(version @jupyter-widgets/html-manager)  BSD-3-Clause  html-manager/ (dist/embed-amd.js and its fonts; bundled licences in embed.js.LICENSE.txt)
EOF

du -sh "$DEST"
echo "vendored into ${DEST#"$ROOT"/}"
