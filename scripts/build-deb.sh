#!/usr/bin/env bash
# Build the Debian package nftc_VERSION_all.deb from this checkout, then check it with lintian.
#   scripts/build-deb.sh [OUTDIR]     OUTDIR: where the .deb goes (default: the checkout's parent, as dpkg does)
# The build runs in a temporary copy of the checkout's files (tracked and untracked, not ignored ones): nothing is
# written into the checkout. Build dependencies (debian/control): `sudo apt-get build-dep ./` in the checkout.
# DEB_BUILD_OPTIONS=nocheck skips the fast tests the build runs.
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
outdir=$(realpath "${1:-$checkout/..}")
[ -d "$outdir" ] || { echo "build-deb.sh: $outdir is not a directory" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nftc-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/nftc"
git -C "$checkout" ls-files -z --cached --others --exclude-standard \
  | (cd "$checkout" && xargs -0 -r sh -c 'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' _) \
  | tar -C "$checkout" --null -T - -cf - | tar -C "$work/nftc" -xf -

cd "$work/nftc"
# The distribution's tools and interpreter only: a pyenv or conda python3 first on PATH is not Debian's.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
if ! dpkg-checkbuilddeps 2>"$work/deps"; then
  echo "build-deb.sh: $(cat "$work/deps")" >&2
  echo "build-deb.sh: install them with: sudo apt-get build-dep '$checkout'" >&2
  exit 1
fi
dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
changes=$(ls "$work"/nftc_*.changes)
if command -v lintian >/dev/null; then
  # Every tag down to info, pedantic ones included, fails the build; overrides are argued in debian/*.lintian-overrides.
  lintian --fail-on error,warning,info,pedantic --pedantic "$changes" >&2
fi
cp "$work"/nftc_*_all.deb "$outdir/"
ls "$outdir"/nftc_*_all.deb | tail -n 1
