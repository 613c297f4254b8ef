#!/usr/bin/env bash
# Build dockd_<version>_<arch>.deb in the repository root (`make deb`).
#
# Why a staged tree and dpkg-deb, not dh-virtualenv: dh-virtualenv (bookworm: 1.2.2)
# needs the whole debhelper tool chain (debhelper, dpkg-buildpackage, a debian/ tree with
# changelog and rules) on the build machine, and builds with the `virtualenv` tool rather
# than the interpreter's own venv. What it does for us is three steps, done here with
# what every Debian has (dpkg-deb, ldd, dpkg -S) plus python3-venv, which `make test`
# already needs:
#   1. a virtualenv at /opt/dockd made by the system python3 (never a pyenv/conda one:
#      the package depends on the Debian interpreter its venv links to), dockd installed
#      into it with pip from the same index `make test` uses (its wheel cache is reused);
#   2. the venv made relocatable to /opt/dockd (script shebangs, activate, byte-code
#      compiled with /opt/dockd paths, so nothing is written there at run time);
#   3. Depends computed from the shared libraries the venv's wheels link to (dpkg -S).
#
# The package: /opt/dockd (venv), /usr/bin/dockd, the units of systemd/ (ExecStart on
# /usr/bin/dockd), sysusers.d and tmpfiles.d entries, /etc/dockd/dockd.toml (a conffile,
# from config.example.toml), the docs in /usr/share/doc/dockd, and maintainer scripts
# (packaging/{preinst,postinst,prerm,postrm}). No udev rule: dockd needs none
# (docs/operations.md). The ledger and the store are never removed, not even by a purge.
set -euo pipefail
umask 022
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${DEB_PYTHON:-/usr/bin/python3}
WORK=$ROOT/build/deb
STAGE=$WORK/root
VENV=/opt/dockd

die() { echo "build-deb: $*" >&2; exit 1; }
[ -x "$PY" ] || die "no $PY: apt install python3 python3-venv"
"$PY" -c 'import ensurepip, venv' 2>/dev/null || die "$PY has no venv module: apt install python3-venv"
command -v dpkg-deb >/dev/null || die "no dpkg-deb: this builds on Debian"
SYSUSERS=systemd/dockd.sysusers.conf
[ -f "$SYSUSERS" ] || die "no $SYSUSERS (the groups dockd and dockd-audit)"

VERSION=$("$PY" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
PYMINOR=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
# The venv's site-packages is python$PYMINOR's: a newer python3 would orphan it.
PYNEXT=$("$PY" -c 'import sys; print("%d.%d" % (sys.version_info[0], sys.version_info[1] + 1))')
DEB=dockd_${VERSION}_${ARCH}.deb
echo "build-deb: $DEB (python$PYMINOR from $PY)"
SECONDS=0

rm -rf "$WORK"
mkdir -p "$STAGE" "$WORK/src"

# 1. The venv. dockd is built from a copy of what pip needs, so a stale build/lib or
# egg-info of the working tree never ends up in the wheel. The postgres extra is in:
# a station on a PostgreSQL ledger needs nothing else installed.
cp -r pyproject.toml README.md src "$WORK/src/"
find "$WORK/src" \( -name __pycache__ -o -name '*.egg-info' \) -prune -exec rm -rf {} +
"$PY" -m venv "$STAGE$VENV"
"$STAGE$VENV/bin/pip" install --quiet --disable-pip-version-check --no-compile \
	"$WORK/src[postgres]"
echo "build-deb: venv ready (${SECONDS}s)"

# 2. Relocate: every text file that names the staging directory names /opt/dockd instead.
grep -rlIF --exclude-dir=__pycache__ "$STAGE$VENV" "$STAGE$VENV" |
	xargs -r sed -i "s|$STAGE$VENV|$VENV|g"
"$STAGE$VENV/bin/python" -m compileall -q -f -j 0 -s "$STAGE" -p / "$STAGE$VENV/lib" >/dev/null ||
	echo "build-deb: some files did not byte-compile (left as source)" >&2
left=$(grep -rlF "$STAGE" "$STAGE$VENV" || true)
[ -z "$left" ] || die "these files still name the staging directory $STAGE:
$(echo "$left" | head -5)"
[ "$(readlink "$STAGE$VENV/bin/python3")" = "$PY" ] || [ "$(readlink "$STAGE$VENV/bin/python")" = "$PY" ] ||
	die "the venv's python is not $PY"

# 3. Shared libraries: every library a compiled module needs, from the venv itself
# (wheels bundle theirs) or from a Debian package, which becomes a dependency.
mapfile -t libs < <(find "$STAGE$VENV" -type f -name '*.so*' -print0 |
	xargs -0 -r ldd 2>/dev/null | awk '/=> not found/ {print "MISSING " $1; next} /=> \// {print $3}' |
	sort -u)
shlibs=()
for lib in "${libs[@]}"; do
	case $lib in
	MISSING*) die "a module of the venv needs ${lib#MISSING }, which no package provides here" ;;
	"$STAGE"*) continue ;;
	esac
	pkg=$(dpkg -S "$lib" 2>/dev/null || dpkg -S "$(readlink -f "$lib")" 2>/dev/null) ||
		die "no Debian package owns $lib (needed by the venv)"
	shlibs+=("${pkg%%:*}")
done
SHLIBS=$(printf '%s\n' "${shlibs[@]}" | sed 's/, /\n/g' | sort -u | paste -sd, | sed 's/,/, /g')

# The rest of the tree.
install -d "$STAGE/usr/bin" "$STAGE/lib/systemd/system" "$STAGE/usr/lib/sysusers.d" \
	"$STAGE/usr/lib/tmpfiles.d" "$STAGE/usr/share/doc/dockd/docs" "$STAGE/DEBIAN"
ln -s "$VENV/bin/dockd" "$STAGE/usr/bin/dockd"
units=()
for unit in systemd/*.service; do
	name=$(basename "$unit")
	sed 's|/usr/local/bin/dockd|/usr/bin/dockd|g' "$unit" >"$STAGE/lib/systemd/system/$name"
	grep -q '^ExecStart=/usr/bin/dockd ' "$STAGE/lib/systemd/system/$name" ||
		die "$unit: ExecStart does not run /usr/local/bin/dockd, the path this script rewrites"
	units+=("$name")
done
install -m 0644 "$SYSUSERS" "$STAGE/usr/lib/sysusers.d/dockd.conf"
# The state and runtime directories, with the modes the unit gives them.
unit_mode() { local m; m=$(sed -n "s/^$1=//p" systemd/dockd.service | tail -1); echo "${m:-0750}"; }
{
	echo "# dockd's directories, created by systemd-tmpfiles at install and boot (modes as in dockd.service)."
	echo "# /var/lib/dockd holds the ledger and the store: evidence, never removed by the package."
	echo "d /var/lib/dockd $(unit_mode StateDirectoryMode) root root -"
	echo "d /run/dockd $(unit_mode RuntimeDirectoryMode) root root -"
} >"$STAGE/usr/lib/tmpfiles.d/dockd.conf"
install -d -m 0750 "$STAGE/etc/dockd"
install -m 0640 config.example.toml "$STAGE/etc/dockd/dockd.toml"
# sudo for the dockd-users group, for dockd alone (docs/admin.md, "Accounts and roles").
install -d -m 0755 "$STAGE/etc/sudoers.d"
install -m 0440 packaging/sudoers "$STAGE/etc/sudoers.d/dockd"
install -m 0644 README.md config.example.toml "$STAGE/usr/share/doc/dockd/"
install -m 0644 docs/*.md "$STAGE/usr/share/doc/dockd/docs/"
cat >"$STAGE/usr/share/doc/dockd/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: dockd
License: Apache-2.0
Comment: /opt/dockd holds dockd and the Python packages it depends on, each under its
 own license (see /opt/dockd/lib/python$PYMINOR/site-packages/*.dist-info).
 On Debian systems the Apache 2.0 license is in /usr/share/common-licenses/Apache-2.0.
EOF

for script in preinst postinst prerm postrm; do
	sed "s|@UNITS@|${units[*]}|g" "packaging/$script" >"$STAGE/DEBIAN/$script"
	chmod 0755 "$STAGE/DEBIAN/$script"
done
printf '%s\n' /etc/dockd/dockd.toml /etc/sudoers.d/dockd >"$STAGE/DEBIAN/conffiles"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z |
	xargs -0 md5sum) >"$STAGE/DEBIAN/md5sums"

cat >"$STAGE/DEBIAN/control" <<EOF
Package: dockd
Version: $VERSION
Architecture: $ARCH
Maintainer: dockd maintainers <root@localhost>
Installed-Size: $(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
Depends: python3 (>= 3.11), python3 (<< $PYNEXT), python$PYMINOR, mount, util-linux, $SHLIBS
Recommends: fusefat, exfat-fuse, fuse3, kmod, sudo
Suggests: xorriso, postgresql-client
Section: admin
Priority: optional
Description: ingest body-worn recorder footage into a verified, audited store
 dockd runs on the dock station: when a recorder docks it mounts it read-only,
 copies and hashes every recording into the store and records it in an
 append-only, hash-chained ledger; sweeps check fixity and apply retention.
 .
 The ledger and the store in /var/lib/dockd are evidence: removing or purging
 this package leaves them in place.
EOF

# zstd, not dpkg-deb's default xz: the same size within 10 %, in seconds instead of
# minutes on a loaded 2-core CI machine; bookworm's dpkg reads it.
dpkg-deb --root-owner-group -Zzstd --build "$STAGE" "$ROOT/$DEB" >/dev/null
[ -n "${DEB_KEEP_STAGE:-}" ] || rm -rf "$WORK"  # 200 MB; DEB_KEEP_STAGE=1 keeps it to look at
echo "build-deb: $ROOT/$DEB ($(du -h "$ROOT/$DEB" | cut -f1), ${SECONDS}s)"
