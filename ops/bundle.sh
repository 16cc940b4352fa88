#!/usr/bin/env bash
# Build the signed offline install bundle enclave-<version>-<arch>-linux.tar.gz
# (see docs/operator/release.md).
#
#   ops/bundle.sh --key release.key [--profile release|debug] [--bin-dir DIR]
#                 [--with-sources] [--out-dir DIR]
#
#   --key FILE       the vendor's release key (enclavectl release-key init);
#                    or ENCLAVE_RELEASE_KEY
#   --profile P      release (default) or debug
#   --bin-dir DIR    take enclave and enclavectl from DIR instead of building
#   --with-sources   add the workspace sources and `cargo vendor` output under
#                    src/, so the site can rebuild offline (README § Building offline)
#   --out-dir DIR    where the tarball goes (default target/bundle)
#   --keep-debuginfo ship the binaries as built; by default their DWARF debug
#                    info is split off into <out-dir>/<bundle>-debug/ (kept by
#                    the vendor, for symbolizing support reports) and the
#                    shipped binaries keep their symbols and a gnu-debuglink
#
# Needs cargo (metadata, vendor), rustc, objdump or readelf (binutils), GNU tar, gzip.
set -euo pipefail
profile=release; bin_dir=""; with_sources=0; keep_debug=0; out_dir=""; key="${ENCLAVE_RELEASE_KEY:-}"
while [ $# -gt 0 ]; do
  case "$1" in
    --key) key=$2; shift 2 ;;
    --profile) profile=$2; shift 2 ;;
    --bin-dir) bin_dir=$2; shift 2 ;;
    --with-sources) with_sources=1; shift ;;
    --keep-debuginfo) keep_debug=1; shift ;;
    --out-dir) out_dir=$2; shift 2 ;;
    -h|--help) sed -n 2,20p "$0"; exit 0 ;;
    *) echo "bundle.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "bundle.sh: $*" >&2; exit 1; }
case "$profile" in release) cargo_profile=release ;; debug) cargo_profile=dev ;; *) die "--profile must be release or debug" ;; esac
[ -n "$key" ] || die "--key FILE is required (create one with: enclavectl release-key init --out DIR)"
[ -f "$key" ] || die "$key: no such release key"
key=$(cd "$(dirname "$key")" && pwd)/$(basename "$key")
root=$(cd "$(dirname "$0")/.." && pwd)
cargo=${CARGO:-cargo}
[ -n "$out_dir" ] || out_dir="$root/target/bundle"
mkdir -p "$out_dir"; out_dir=$(cd "$out_dir" && pwd)

# The workspace version, from [workspace.package] in Cargo.toml.
version=$(awk '/^\[workspace\.package\]/{p=1;next} /^\[/{p=0} p && $1=="version"{gsub(/"/,"",$3); print $3; exit}' "$root/Cargo.toml")
[ -n "$version" ] || die "no version in [workspace.package] of $root/Cargo.toml"
host=$(rustc -vV | sed -n 's/^host: //p')
arch=${host%%-*}
name="enclave-$version-$arch-linux"
stage="$out_dir/$name"
tarball="$out_dir/$name.tar.gz"

if [ -z "$bin_dir" ]; then
  echo "building enclave and enclavectl ($profile)..." >&2
  (cd "$root" && "$cargo" build --locked --profile "$cargo_profile" -p enclave-node -p enclave-ops --bin enclave --bin enclavectl)
  bin_dir="$root/target/$profile"
fi
bin_dir=$(cd "$bin_dir" && pwd)
for b in enclave enclavectl; do [ -x "$bin_dir/$b" ] || die "$bin_dir/$b is missing"; done
ctl="$bin_dir/enclavectl"

rm -rf "$stage" "$tarball"
mkdir -p "$stage/bin" "$stage/docs"
install -m 0755 "$bin_dir/enclave" "$bin_dir/enclavectl" "$stage/bin/"
debug_dir="$out_dir/$name-debug"
rm -rf "$debug_dir"
if [ "$keep_debug" = 0 ]; then
  command -v objcopy >/dev/null 2>&1 || die "objcopy (binutils) is needed to split off debug info (or pass --keep-debuginfo)"
  mkdir -p "$debug_dir"
  for b in enclave enclavectl; do
    objcopy --only-keep-debug "$stage/bin/$b" "$debug_dir/$b.debug"
    (cd "$debug_dir" && objcopy --strip-debug --add-gnu-debuglink="$b.debug" "$stage/bin/$b")
  done
fi
# Operator and API documentation (docs/design holds internal plans only).
(cd "$root/docs" && find . -path ./design -prune -o -type f -print | while read -r f; do
  install -D -m 0644 "$f" "$stage/docs/$f"; done)
install -m 0644 "$root/README.md" "$stage/README.md"
[ -f "$root/LICENSE" ] && install -m 0644 "$root/LICENSE" "$stage/LICENSE"
# The systemd unit, example configuration and whatever else ops/systemd holds.
if [ -d "$root/ops/systemd" ]; then
  (cd "$root/ops/systemd" && find . -type f -print | while read -r f; do
    install -D -m 0644 "$f" "$stage/ops/systemd/$f"; done)
fi
# Alert rules and the Grafana dashboard (docs/operator/monitoring.md).
for d in prometheus grafana; do
  if [ -d "$root/ops/$d" ]; then
    (cd "$root/ops/$d" && find . -type f -print | while read -r f; do
      install -D -m 0644 "$f" "$stage/ops/$d/$f"; done)
  fi
done

# Reproducible timestamps: the commit time of HEAD.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
  SOURCE_DATE_EPOCH=$(git -C "$root" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
commit=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=no; [ -n "$(git -C "$root" status --porcelain 2>/dev/null)" ] && dirty=yes
rustc_v=$(rustc -V)

# SBOM of the crates in the binaries (docs/operator/release.md § SBOM).
meta=$(mktemp); trap 'rm -f "$meta"' EXIT
(cd "$root" && { "$cargo" metadata --format-version 1 --locked --offline --filter-platform "$host" >"$meta" 2>/dev/null \
  || "$cargo" metadata --format-version 1 --locked --filter-platform "$host" >"$meta"; })
"$ctl" bundle sbom --metadata "$meta" --lockfile "$root/Cargo.lock" --rustc "$rustc_v" --out "$stage/sbom.cdx.json"

# glibc floor: the newest GLIBC_x.y symbol version either binary needs.
glibc_of() {
  if command -v objdump >/dev/null 2>&1; then objdump -T "$1"
  elif command -v readelf >/dev/null 2>&1; then readelf --dyn-syms -W "$1"
  else die "objdump or readelf (binutils) is needed to state the glibc floor"; fi | grep -o 'GLIBC_[0-9.]*' || true
}
glibc=$( { glibc_of "$stage/bin/enclave"; glibc_of "$stage/bin/enclavectl"; } | sort -V | tail -1)
[ -n "$glibc" ] || glibc="none (static)"
# State it in the bundled install guide as well.
if [ -f "$stage/docs/operator/install.md" ]; then
  sed -i "s|<!-- glibc-floor -->[^<]*<!-- /glibc-floor -->|<!-- glibc-floor -->${glibc#GLIBC_} (\`${glibc}\`, measured on this bundle's binaries)<!-- /glibc-floor -->|" "$stage/docs/operator/install.md"
fi

if [ "$with_sources" = 1 ]; then
  echo "adding workspace sources and cargo vendor output under src/..." >&2
  mkdir -p "$stage/src"
  # The working tree the binaries were built from: tracked files plus new,
  # not ignored ones (a release is built from a clean checkout, where
  # that is exactly the commit; MANIFEST says git_dirty otherwise).
  [ "$dirty" = no ] || echo "bundle.sh: warning: the working tree has uncommitted changes; src/ holds them" >&2
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
    [ -f "$f" ] && [ ! -L "$f" ] && install -D -m "$( [ -x "$f" ] && echo 0755 || echo 0644)" "$f" "$stage/src/$f"; done)
  mkdir -p "$stage/src/.cargo"
  (cd "$stage/src" && "$cargo" vendor --locked vendor/ >/dev/null)
  # What `cargo vendor` prints, written out so that it does not depend on its output.
  printf '%s\n' '[source.crates-io]' 'replace-with = "vendored-sources"' '' '[source.vendored-sources]' 'directory = "vendor"' >"$stage/src/.cargo/config.toml"
  # cargo vendor keeps no symlinks, but make sure: a bundle holds only regular files.
  if [ -n "$(find "$stage/src" -type l -print -quit)" ]; then die "symlinks under src/: $(find "$stage/src" -type l | head -3)"; fi
fi

key_id=$("$ctl" release-key show "$key")
cat >"$stage/MANIFEST" <<EOF
name: enclave
version: $version
target: $host
arch: $arch
profile: $profile
debuginfo: $( [ "$keep_debug" = 1 ] && echo "included" || echo "split off (kept by the vendor as $name-debug/)")
glibc_floor: $glibc
rustc: $rustc_v
git_commit: $commit
git_dirty: $dirty
source_date_epoch: $SOURCE_DATE_EPOCH
sources: $( [ "$with_sources" = 1 ] && echo "included (src/, with vendor/)" || echo "not included")
release_key: $key_id
sbom: sbom.cdx.json (CycloneDX 1.5)
EOF

# Make mtimes deterministic, then hash and sign every file.
find "$stage" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
"$ctl" bundle sign "$stage" --key "$key" >&2
touch -d "@$SOURCE_DATE_EPOCH" "$stage/SHA256SUMS" "$stage/SHA256SUMS.sig"

tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$SOURCE_DATE_EPOCH" \
  --mode='u+rw,go-w' --format=gnu -C "$out_dir" -cf - "$name" | gzip -n >"$tarball"
files=$(wc -l <"$stage/SHA256SUMS")
size=$(du -h "$tarball" | cut -f1)
echo "$tarball"
echo "  $size, $files files + SHA256SUMS + SHA256SUMS.sig; glibc floor $glibc; release key $key_id" >&2
