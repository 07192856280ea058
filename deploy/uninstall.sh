#!/usr/bin/env bash
# uninstall.sh — undo deploy/install.sh: stop and disable the units, remove what it installed.
#
#   sudo deploy/uninstall.sh            # keeps /etc/edgeseg (configs, credentials) and models
#   sudo deploy/uninstall.sh --purge    # removes those too, and the edgeseg user
#   deploy/uninstall.sh --destdir=/tmp/stage    # from a staged install; touches nothing else
#
# Use the same --prefix as the install. Running it twice is harmless.
set -euo pipefail

PROG=${0##*/}
PREFIX=/opt/edgeseg
DESTDIR=${DESTDIR:-}
PURGE=no

die() { echo "$PROG: error: $*" >&2; exit 2; }
say() { echo "$PROG: $*"; }

while [ $# -gt 0 ]; do
    case $1 in
        --prefix=*) PREFIX=${1#*=} ;;
        --prefix) [ $# -gt 1 ] || die "--prefix needs a value"; PREFIX=$2; shift ;;
        --destdir=*) DESTDIR=${1#*=} ;;
        --destdir) [ $# -gt 1 ] || die "--destdir needs a value"; DESTDIR=$2; shift ;;
        --purge) PURGE=yes ;;
        -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
        *) die "unknown option $1" ;;
    esac
    shift
done
case $PREFIX in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
PREFIX=${PREFIX%/}
if [ -n "$DESTDIR" ]; then
    [ -d "$DESTDIR" ] || die "--destdir: $DESTDIR is not a directory"
    DESTDIR=$(cd "$DESTDIR" && pwd)
    STAGED=yes
else
    STAGED=no
    [ "$(id -u)" = 0 ] || die "uninstalling from / needs root (or give --destdir=DIR)"
fi
D=$DESTDIR
UNITDIR=/etc/systemd/system

# Instances that were enabled: edgeseg.target.wants/edgeseg-agent@NAME.service.
instances=()
for link in "$D$UNITDIR"/edgeseg.target.wants/edgeseg-agent@*.service; do
    [ -L "$link" ] && instances+=("${link##*/}")
done

if [ "$STAGED" = yes ]; then
    say "staged: skipping systemctl stop/disable/daemon-reload"
elif [ -d /run/systemd/system ]; then
    systemctl stop edgeseg.target ${instances[@]+"${instances[@]}"} edgeseg-server.service \
        2>/dev/null || true
else
    say "systemd is not running here: skipping systemctl stop/daemon-reload"
fi

rm -f "$D$UNITDIR/multi-user.target.wants/edgeseg.target"
rm -rf "$D$UNITDIR/edgeseg.target.wants"
rm -f "$D$UNITDIR/edgeseg-server.service" "$D$UNITDIR/edgeseg-agent@.service" \
      "$D$UNITDIR/edgeseg.target"
rm -rf "$D$UNITDIR/edgeseg-server.service.d" "$D$UNITDIR/edgeseg-agent@.service.d"
rm -f "$D/etc/tmpfiles.d/edgeseg.conf" "$D/etc/mosquitto/conf.d/edgeseg.conf"
rm -rf "$D$PREFIX"

if [ "$PURGE" = yes ]; then
    rm -rf "$D/etc/edgeseg" "$D/var/lib/edgeseg" "$D/var/cache/edgeseg" "$D/etc/mosquitto/edgeseg"
    rm -f "$D/etc/sysusers.d/edgeseg.conf"
    if [ "$STAGED" = no ] && getent passwd edgeseg >/dev/null; then
        userdel edgeseg || say "could not remove the user edgeseg; remove it by hand"
    fi
else
    # The user stays while files it may own (models, state) stay.
    say "kept /etc/edgeseg, /var/lib/edgeseg and the user edgeseg (--purge removes them)"
fi

# A staged tree keeps no empty directories the install made (on a real host they are the
# system's and stay).
if [ "$STAGED" = yes ]; then
    dirs=(etc/systemd/system/multi-user.target.wants etc/systemd/system etc/systemd
          etc/sysusers.d etc/tmpfiles.d etc/mosquitto/conf.d etc/mosquitto etc var/lib var)
    p=${PREFIX%/*}
    while [ -n "$p" ]; do dirs+=("${p#/}"); p=${p%/*}; done
    for dir in "${dirs[@]}"; do
        if [ -d "$D/$dir" ]; then rmdir --ignore-fail-on-non-empty "$D/$dir"; fi
    done
fi

if [ "$STAGED" = no ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl reset-failed 'edgeseg*' 2>/dev/null || true
fi
say "done"
