#!/bin/sh
# tests/embedded/install.sh — libkeel as a user gets it: `meson install` into a scratch
# destdir, the examples compiled with only what `pkg-config keel` says (installed headers,
# libkeel.so; the static libkeel.a too), embedded_store run against the installed library,
# and the exported symbols checked (keel_* only, version KEEL_0.1). Touches nothing but
# its own scratch directory.
# Usage: install.sh BUILD_DIR SOURCE_DIR PREFIX LIBDIR INCLUDEDIR B_SANITIZE
set -eu

build=$1 src=$2 prefix=$3 libdir=$4 includedir=$5 sanitize=$6
CC=${CC:-cc}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/keel-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM

fail() {
	echo "install-example: FAIL: $*" >&2
	exit 1
}

under_root() { # an install path (absolute, or relative to the prefix) inside the destdir
	case $1 in
	/*) echo "$tmp/root$1" ;;
	*) echo "$tmp/root$prefix/$1" ;;
	esac
}

meson install -C "$build" --destdir "$tmp/root" --no-rebuild --quiet >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "meson install"; }

lib=$(under_root "$libdir")
inc=$(under_root "$includedir")
for f in "$lib/libkeel.so" "$lib/libkeel.so.0" "$lib/libkeel.a" "$lib/pkgconfig/keel.pc" \
	"$inc/keel/keel.h" "$inc/keel/concurrency.h"; do
	[ -e "$f" ] || fail "$f was not installed"
done

# The installed keel.pc, relocated into the destdir, found before any other keel.pc (the
# system's own .pc files still answer its Requires.private).
PKG_CONFIG_PATH=$lib/pkgconfig
export PKG_CONFIG_PATH
pc() { pkg-config --define-variable=prefix="$tmp/root$prefix" "$@" keel; }
cflags=$(pc --cflags) || fail "pkg-config --cflags keel"
libs=$(pc --libs) || fail "pkg-config --libs keel"
for f in $cflags $libs; do
	case $f in
	-I*|-L*) case ${f#-?} in "$tmp"/*) ;; *) fail "pkg-config points outside the install: $f" ;; esac ;;
	esac
done
echo "pkg-config keel: $cflags $libs"

san=
if [ "$sanitize" != none ]; then
	# an instrumented libkeel needs the sanitizer runtimes in the program too
	san="-fsanitize=$sanitize"
fi

cd "$tmp" # nothing of the source or build tree is on any search path
for ex in embedded_store lock_fencing; do
	[ -f "$src/examples/$ex.c" ] || fail "examples/$ex.c is missing"
	# shellcheck disable=SC2086
	$CC -Wall -Wextra -Werror $san $cflags -o "$tmp/$ex" "$src/examples/$ex.c" \
		$libs -pthread || fail "compiling examples/$ex.c against the installed libkeel"
done
# The public headers alone, as strict C11 (and as C++ when there is a compiler for it).
printf '#include <keel/keel.h>\n#include <keel/concurrency.h>\nint main(void) { return 0; }\n' \
	>"$tmp/headers.c"
# shellcheck disable=SC2086
$CC -std=c11 -pedantic -Wall -Wextra -Werror $cflags -c -o "$tmp/headers.o" "$tmp/headers.c" ||
	fail "the installed headers do not compile as C11"
if command -v c++ >/dev/null 2>&1; then
	cp "$tmp/headers.c" "$tmp/headers.cc"
	# shellcheck disable=SC2086
	c++ -Wall -Wextra -Werror $cflags -c -o "$tmp/headers_cc.o" "$tmp/headers.cc" ||
		fail "the installed headers do not compile as C++"
fi
readelf -d "$tmp/embedded_store" | grep -q 'NEEDED.*libkeel\.so\.0' ||
	fail "embedded_store does not load libkeel.so.0"

# The static library works alone too: the same program linked against libkeel.a.
static_libs=$(pc --static --libs | sed 's/\(^\| \)-lkeel\( \|$\)/ /')
# shellcheck disable=SC2086
$CC $san $cflags -o "$tmp/embedded_store_static" "$src/examples/embedded_store.c" \
	"$lib/libkeel.a" $static_libs -pthread || fail "linking embedded_store against libkeel.a"
readelf -d "$tmp/embedded_store_static" | grep -q 'NEEDED.*libkeel' &&
	fail "the static link still loads libkeel.so"

LD_LIBRARY_PATH=$lib
export LD_LIBRARY_PATH
ldd "$tmp/embedded_store" | grep -q "libkeel.so.0 => $lib/" ||
	fail "embedded_store would not load the installed libkeel: $(ldd "$tmp/embedded_store")"
for prog in embedded_store embedded_store_static; do
	rc=0
	"$tmp/$prog" "$tmp/store-$prog" >"$tmp/out" 2>&1 || rc=$?
	[ "$rc" -eq 0 ] || { cat "$tmp/out" >&2; fail "$prog exited $rc"; }
	for want in "opening a store in $tmp/store-$prog" "put greeting = hello, keel" \
		"get greeting -> hello, keel (version 1)" "watch: PUT greeting = hello, keel" \
		"key(s) attached" "lease revoked: session is gone" "closed"; do
		grep -qF "$want" "$tmp/out" || { cat "$tmp/out" >&2; fail "$prog did not print: $want"; }
	done
done
cat "$tmp/out"

# Exports: every defined dynamic symbol is keel_* at version KEEL_0.1 (plus the version
# node itself).
nm -D --defined-only "$lib/libkeel.so" >"$tmp/nm" || fail "nm -D libkeel.so"
bad=$(awk '$3 != "KEEL_0.1" && $3 !~ /^keel_[A-Za-z0-9_]*@@KEEL_0\.1$/' "$tmp/nm")
[ -z "$bad" ] || fail "libkeel.so exports more than keel_*@@KEEL_0.1:
$bad"
n=$(grep -c '^[0-9a-f]* T keel_' "$tmp/nm") || true
[ "$n" -gt 50 ] || fail "libkeel.so exports only $n keel_* functions"
grep -q ' T keel_open@@KEEL_0\.1$' "$tmp/nm" || fail "keel_open is not exported"
echo "install-example: ok ($n keel_* functions exported at KEEL_0.1)"
