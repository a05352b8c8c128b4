#!/usr/bin/env bash
# Rebuilds offline.html, the page `dvc plots show` and `dvc plots diff` fill (.dvc/config:
# plots.html_template), with Vega, Vega-Lite and Vega-Embed inlined: the page draws its plots
# with no network access, wherever it is opened from. DVC's own page loads these libraries from
# a CDN and stays blank offline.
#
# The minified browser builds come from the npm registry at the pinned versions below, each
# tarball checked against its pinned integrity (the registry's dist.integrity). The majors are
# those DVC's default page loads (dvc_render.vega: vega 5, vega-lite 5, vega-embed 6). The vega
# package ships no LICENSE file: LICENSE.vega is the vega/vega monorepo's, from vega-typings,
# published from the same repository. To update: change a version and its integrity (`npm view
# <package>@<version> dist.integrity`), run this script, run tests/test_plots_offline.py.
set -euo pipefail
cd "$(dirname "$0")"

packages=(
  "vega 5.33.1 sha512-1fArfVDUqVbb5z8n+/nVQb+VNBzx8svY6CrsyTK4Ujm4yrd9I1auoKxBAPXLCavY1LcrbHUskQbGUP8gXOzyQw=="
  "vega-lite 5.23.0 sha512-l4J6+AWE3DIjvovEoHl2LdtCUkfm4zs8Xxx7INwZEAv+XVb6kR6vIN1gt3t2gN2gs/y4DYTs/RPoTeYAuEg6mA=="
  "vega-embed 6.29.0 sha512-PmlshTLtLFLgWtF/b23T1OwX53AugJ9RZ3qPE2c01VFAbgt3/GSNI/etzA/GzdrkceXFma+FDHNXUppKuM0U6Q=="
  "vega-typings 1.5.1 sha512-40kRoG/jG8+4cd3kT5yw08iTlIGe57F7Go/ileSCtRtgU8RZ7tpPaE6GgYvF/HTPlCKMk9/pOdp62+o5sulhvQ=="
)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for entry in "${packages[@]}"; do
  read -r name version integrity <<<"$entry"
  tarball=$(cd "$work" && npm pack --silent "$name@$version")
  actual="sha512-$(openssl dgst -sha512 -binary "$work/$tarball" | base64 -w0)"
  [ "$actual" = "$integrity" ] || { echo "error: $name@$version is $actual, not $integrity" >&2; exit 1; }
  mkdir "$work/$name"
  tar -xzf "$work/$tarball" -C "$work/$name" --strip-components=1
done
cp "$work/vega-typings/LICENSE" LICENSE.vega
cp "$work/vega-lite/LICENSE" LICENSE.vega-lite
cp "$work/vega-embed/LICENSE" LICENSE.vega-embed

# One library per <script>, its text as published but for the source-map comment (the map is not
# shipped). DVC fills the page by replacing the placeholders plot_divs, refresh_tag and scripts in
# braces anywhere in it: the page has no scripts placeholder (DVC would add its CDN tags there),
# and a library holding one of the three would be mangled.
inline() {
  local name=$1 version=$2 file=$3
  if grep -qiE '</script|<!--|\{(plot_divs|refresh_tag|scripts)\}' "$file"; then
    echo "error: $file cannot be inlined as is" >&2
    exit 1
  fi
  printf '    <script>/* %s %s (BSD-3-Clause, see LICENSE.%s), npm: %s */\n' "$name" "$version" "$name" "${file#"$work/"}"
  sed '/^\/\/# sourceMappingURL=/d' "$file"
  printf '    </script>\n'
}
version_of() { for entry in "${packages[@]}"; do read -r n v _ <<<"$entry"; [ "$n" = "$1" ] && echo "$v"; done; }

{
  cat <<'EOF'
<!DOCTYPE html>
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
    <!-- Written by .dvc/plots/update-offline-template.sh: Vega, Vega-Lite and Vega-Embed inlined, no network needed. -->
EOF
  for name in vega vega-lite vega-embed; do
    inline "$name" "$(version_of "$name")" "$work/$name/build/$name.min.js"
  done
  cat <<'EOF'
    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
EOF
} >offline.html.tmp
mv offline.html.tmp offline.html
echo "wrote $(pwd)/offline.html ($(wc -c <offline.html) bytes)"
