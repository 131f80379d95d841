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
#   mathjax/                        mathjax 3: tex-chtml.js, its TeX extensions, fonts, menu
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
mkdir -p "$DEST/html-manager" "$DEST/mathjax/input/tex" "$DEST/mathjax/output/chtml/fonts"

# require.js (a single file; its licence is in its header comment)
cp "$NM/requirejs/require.js" "$DEST/require.js"

# The HTML widget manager (AMD build: it finds widget modules through require.js).
# Browsers that run this bundle all read WOFF2 or WOFF, so the EOT/TTF/SVG copies of the
# Font Awesome fonts are left out; the CSS lists them only as fallbacks.
HM="$NM/@jupyter-widgets/html-manager/dist"
cp "$HM/embed-amd.js" "$HM/embed.js.LICENSE.txt" "$DEST/html-manager/"
cp "$HM"/*.woff2 "$HM"/*.woff "$DEST/html-manager/"

# MathJax 3: the TeX-to-HTML component, the extensions its autoload pulls in on demand
# (\boldsymbol, \cancel, ...), the CHTML fonts and the context menu. The accessibility
# explorer (a11y/ and sre/, 4 MB) is left out: it is off unless a reader enables it.
MJ="$NM/mathjax/es5"
cp "$MJ/tex-chtml.js" "$DEST/mathjax/"
cp -r "$MJ/input/tex/extensions" "$DEST/mathjax/input/tex/"
cp -r "$MJ/output/chtml/fonts/woff-v2" "$DEST/mathjax/output/chtml/fonts/"
cp -r "$MJ/ui" "$DEST/mathjax/"
cp "$NM/mathjax/LICENSE" "$DEST/mathjax/LICENSE"

cat > "$DEST/VERSIONS.txt" <<EOF
Files copied from npm packages by scripts/vendor_js.sh (pinned in package.json and package-lock.json).

requirejs                      $(version requirejs)   MIT           require.js
@jupyter-widgets/html-manager  $(version @jupyter-widgets/html-manager)  BSD-3-Clause  html-manager/ (dist/embed-amd.js and its fonts; bundled licences in embed.js.LICENSE.txt)
mathjax                        $(version mathjax)   Apache-2.0    mathjax/ (es5/tex-chtml.js, input/tex/extensions, output/chtml/fonts/woff-v2, ui)
EOF

du -sh "$DEST"
echo "vendored into ${DEST#"$ROOT"/}"
