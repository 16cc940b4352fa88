#!/usr/bin/env bash
# Build the previous release's `enclave` binary for the rolling-upgrade test
# (tests/tests/upgrade.rs) into target/upgrade-prev/bin/enclave.
#
# The release is named in tests/previous-release as "<tag> <commit>"; the
# commit is used (a clone of main has it even when tags were not fetched).
# Its sources are taken with `git archive` (no worktree bookkeeping) and built
# in the debug profile with their own target dir, seeded from target/debug so
# the unchanged dependencies are not compiled again. The result is cached
# by commit: a second run does nothing.
#
# Usage: ops/build-previous.sh        (from anywhere in the repository)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
read -r tag sha < tests/previous-release
out=$root/target/upgrade-prev
mkdir -p "$root/target"
# One build at a time: the upgrade tests run in parallel processes and each
# calls this script; the second waits here and then finds the cached build.
exec 9>"$root/target/upgrade-prev.lock"
flock 9
if [ -x "$out/bin/enclave" ] && [ "$(cat "$out/bin/COMMIT" 2>/dev/null)" = "$sha" ]; then
    echo "previous release $tag ($sha) already built: $out/bin/enclave"
    exit 0
fi
if ! git cat-file -e "$sha^{commit}" 2>/dev/null; then
    echo "error: commit $sha ($tag, from tests/previous-release) is not in this clone;" >&2
    echo "       a shallow clone lacks it: run 'git fetch --unshallow' (or 'git fetch origin tag $tag')" >&2
    exit 1
fi
echo "building the previous release $tag ($sha) into $out"
rm -rf "$out/src" "$out/bin"
mkdir -p "$out/src" "$out/bin" "$out/target/debug"
git archive "$sha" | tar -x -C "$out/src"
# Seed the target dir with this tree's compiled dependencies: the same
# crate versions and features are fresh there, so only the workspace's own
# crates are compiled. Copies, not hard links: rustc may rewrite outputs.
if [ -d target/debug/deps ] && [ ! -e "$out/target/debug/.seeded" ]; then
    rm -rf "$out/target/debug" && mkdir -p "$out/target/debug"   # a copy cut short before
    for d in deps build .fingerprint; do
        [ -d "target/debug/$d" ] && cp -a "target/debug/$d" "$out/target/debug/"
    done
    touch "$out/target/debug/.seeded"
fi
(cd "$out/src" && CARGO_TARGET_DIR="$out/target" nice cargo build --locked --quiet -p enclave-node --bin enclave)
cp "$out/target/debug/enclave" "$out/bin/enclave"
echo "$sha" > "$out/bin/COMMIT"
echo "built: $out/bin/enclave ($("$out/bin/enclave" --version 2>/dev/null || echo "$tag"))"
