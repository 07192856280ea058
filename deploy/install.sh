#!/usr/bin/env bash
# install.sh — install edgeseg as systemd services on this machine, or stage the install.
#
#   sudo deploy/install.sh --camera front-door            # GPU node with one camera
#   sudo deploy/install.sh --no-server --camera gate      # camera-only node
#   deploy/install.sh --destdir /tmp/stage --venv-from "$PWD/.venv"   # staged, as a package
#
# What it puts where (PREFIX defaults to /opt/edgeseg):
#   PREFIX/venv/                    a virtualenv with edgeseg (unless --no-venv/--venv-from)
#   PREFIX/bin/edgeseg              what the units run (link into the venv, or a wrapper)
#   PREFIX/share/edgeseg/           pristine copies of the config files and Mosquitto files
#   PREFIX/share/doc/edgeseg/       docs/deploy.md
#   /etc/systemd/system/            edgeseg-server.service, edgeseg-agent@.service, edgeseg.target
#                                   and the symlinks `systemctl enable` makes
#   /etc/sysusers.d/edgeseg.conf    the system user `edgeseg`
#   /etc/tmpfiles.d/edgeseg.conf    /var/lib/edgeseg/models, /etc/edgeseg/credentials
#   /etc/edgeseg/                   config skeletons, written only where no file exists yet
#   /etc/mosquitto/conf.d/edgeseg.conf, /etc/mosquitto/edgeseg/acl   with --broker
#
# Idempotent: running it again gives the same tree; files under /etc/edgeseg that exist are
# never overwritten (the admin's edits win). With DESTDIR (or --destdir) nothing outside
# DESTDIR is touched: no systemctl, no user creation, no chown — it writes what a package
# would ship and says what it skipped. uninstall.sh undoes it.
set -euo pipefail

PROG=${0##*/}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PREFIX=/opt/edgeseg
DESTDIR=${DESTDIR:-}
VENV_MODE=build          # build | from | none
VENV_FROM=
PYTHON=${PYTHON:-python3}
SERVER=yes
BROKER=no
START=no
CAMERAS=()

usage() {
    cat <<EOF
usage: $PROG [options]
  --prefix=DIR       where edgeseg's own files go (default /opt/edgeseg)
  --destdir=DIR      stage the install under DIR (also: DESTDIR=DIR in the environment)
  --venv-from=DIR    use this existing virtualenv (which has edgeseg installed) instead of
                     building one; PREFIX/bin/edgeseg becomes a wrapper that runs it
  --no-venv          install no virtualenv and no PREFIX/bin/edgeseg (you provide them)
  --python=PYTHON    interpreter for the new virtualenv (default python3)
  --camera=NAME      enable edgeseg-agent@NAME.service; writes /etc/edgeseg/agent-NAME.yaml
                     from the example if it does not exist (repeatable)
  --no-server        do not enable edgeseg-server.service (camera-only node)
  --broker           also install the Mosquitto config (conf.d fragment and ACL)
  --now              start what was enabled (not in a staged install)
  -h, --help         this text
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 2; }
say() { echo "$PROG: $*"; }

# needs_value ARGS...: for "--opt VALUE" (no "="), take VALUE from the next argument; returns
# 0 when the caller must shift it away.
needs_value() {
    [ "$has_eq" = no ] || return 1
    [ $# -gt 0 ] || die "$opt needs a value"
    val=$1
}

while [ $# -gt 0 ]; do
    arg=$1; shift
    case $arg in
        --*=*) opt=${arg%%=*}; val=${arg#*=}; has_eq=yes ;;
        *) opt=$arg; val=; has_eq=no ;;
    esac
    case $opt in
        --prefix) if needs_value "$@"; then shift; fi; PREFIX=$val ;;
        --destdir) if needs_value "$@"; then shift; fi; DESTDIR=$val ;;
        --venv-from) if needs_value "$@"; then shift; fi; VENV_MODE=from; VENV_FROM=$val ;;
        --python) if needs_value "$@"; then shift; fi; PYTHON=$val ;;
        --camera) if needs_value "$@"; then shift; fi; CAMERAS+=("$val") ;;
        --no-venv) VENV_MODE=none ;;
        --no-server) SERVER=no ;;
        --broker) BROKER=yes ;;
        --now) START=yes ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown option $arg" ;;
    esac
done

case $PREFIX in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
PREFIX=${PREFIX%/}
if [ -n "$DESTDIR" ]; then
    mkdir -p "$DESTDIR"
    DESTDIR=$(cd "$DESTDIR" && pwd)
    STAGED=yes
else
    STAGED=no
    [ "$(id -u)" = 0 ] || die "installing into / needs root (or stage it with --destdir=DIR)"
fi
for cam in ${CAMERAS[@]+"${CAMERAS[@]}"}; do
    [[ $cam =~ ^[A-Za-z0-9_.-]+$ ]] || die "camera name '$cam': use letters, digits, . _ -"
done
if [ "$VENV_MODE" = build ] && [ "$STAGED" = yes ]; then
    die "a virtualenv cannot be moved after it is built: with --destdir use --venv-from=DIR" \
        "or --no-venv, and build the venv on the target"
fi
if [ "$VENV_MODE" = from ]; then
    case $VENV_FROM in /*) ;; *) VENV_FROM=$(cd "$VENV_FROM" && pwd) ;; esac
    [ -x "$VENV_FROM/bin/edgeseg" ] || die "--venv-from: $VENV_FROM/bin/edgeseg is missing"
fi

UNITDIR=/etc/systemd/system
ETC=/etc/edgeseg
D=$DESTDIR

# put SRC DST MODE: install one file (content replaced, mode set) — same result every run.
put() { install -D -m "$3" "$1" "$D$2"; }
# put_text DST MODE: install stdin as DST.
put_text() { local tmp; tmp=$(mktemp); cat >"$tmp"; install -D -m "$2" "$tmp" "$D$1"; rm -f "$tmp"; }
# skeleton SRC DST: a config file the admin owns — written once, never overwritten.
skeleton() {
    if [ -e "$D$2" ]; then
        say "keeping $2 (exists)"
    else
        install -D -m 0640 "$1" "$D$2"
        [ "$STAGED" = yes ] || chgrp edgeseg "$D$2"
    fi
}
# with_prefix FILE: the file with the default prefix replaced by PREFIX.
with_prefix() { sed "s|/opt/edgeseg|$PREFIX|g" "$1"; }
# enable_link WANTS_DIR UNIT TARGET_FILE: what `systemctl enable` writes.
enable_link() {
    mkdir -p "$D$UNITDIR/$1"
    ln -sfn "$UNITDIR/$3" "$D$UNITDIR/$1/$2"
}

# 1. The user. A package ships the sysusers.d line; systemd-sysusers makes the user from it.
put_text /etc/sysusers.d/edgeseg.conf 0644 <<'EOF'
# edgeseg: the system user the model server and camera agents run as (see deploy/install.sh).
u edgeseg - "edgeseg model server and camera agents" /var/lib/edgeseg
EOF
put_text /etc/tmpfiles.d/edgeseg.conf 0644 <<'EOF'
# edgeseg: models are read-only to the services (ReadOnlyPaths=), written by root or a sync
# job; MQTT passwords and keys for LoadCredential= live in /etc/edgeseg/credentials.
d /var/lib/edgeseg 0755 root root -
d /var/lib/edgeseg/models 0755 root root -
d /etc/edgeseg/credentials 0700 root root -
EOF
if [ "$STAGED" = yes ]; then
    say "staged: skipping systemd-sysusers/systemd-tmpfiles (the user and directories are made on the target)"
    mkdir -p "$D/var/lib/edgeseg/models" "$D$ETC/credentials"
    chmod 0755 "$D/var/lib/edgeseg" "$D/var/lib/edgeseg/models"
    chmod 0700 "$D$ETC/credentials"
elif command -v systemd-sysusers >/dev/null; then
    systemd-sysusers /etc/sysusers.d/edgeseg.conf
    systemd-tmpfiles --create /etc/tmpfiles.d/edgeseg.conf
else
    getent passwd edgeseg >/dev/null ||
        useradd --system --home-dir /var/lib/edgeseg --no-create-home \
            --shell /usr/sbin/nologin --user-group edgeseg
    install -d -m 0755 /var/lib/edgeseg /var/lib/edgeseg/models
    install -d -m 0700 /etc/edgeseg/credentials
fi

# 2. The program.
case $VENV_MODE in
    build)
        venv=$PREFIX/venv
        if [ ! -x "$venv/bin/python" ]; then
            say "creating $venv (with system site packages: JetPack's TensorFlow wheel is used)"
            "$PYTHON" -m venv --system-site-packages "$venv"
        fi
        constraints=$(mktemp)
        # Keep a TensorFlow that is already there (NVIDIA's CUDA build on a Jetson): pip
        # must not swap it for PyPI's CPU-only wheel.
        if tf=$("$venv/bin/python" -c \
                'import importlib.metadata as m; print(m.version("tensorflow"))' 2>/dev/null); then
            say "keeping the installed tensorflow $tf"
            echo "tensorflow==$tf" >"$constraints"
        fi
        "$venv/bin/python" -m pip install --quiet --upgrade --constraint "$constraints" "$SRC"
        rm -f "$constraints"
        mkdir -p "$D$PREFIX/bin"
        ln -sfn ../venv/bin/edgeseg "$D$PREFIX/bin/edgeseg"
        ;;
    from)
        put_text "$PREFIX/bin/edgeseg" 0755 <<EOF
#!/bin/sh
# edgeseg from an existing virtualenv (install.sh --venv-from=$VENV_FROM)
exec "$VENV_FROM/bin/edgeseg" "\$@"
EOF
        ;;
    none)
        say "--no-venv: provide $PREFIX/bin/edgeseg yourself before starting the units"
        ;;
esac
for f in models.config batching_parameters.txt monitoring.config; do
    put "$SRC/deploy/$f" "$PREFIX/share/edgeseg/$f" 0644
done
for f in server.env agent-example.yaml; do
    put "$SRC/deploy/etc/$f" "$PREFIX/share/edgeseg/$f" 0644
done
for f in edgeseg.conf acl bridge.conf central.conf README.md; do
    put "$SRC/deploy/mosquitto/$f" "$PREFIX/share/edgeseg/mosquitto/$f" 0644
done
with_prefix "$SRC/docs/deploy.md" | put_text "$PREFIX/share/doc/edgeseg/deploy.md" 0644

# 3. Configuration skeletons (the admin's from then on).
for f in models.config batching_parameters.txt monitoring.config; do
    skeleton "$SRC/deploy/$f" "$ETC/$f"
done
skeleton "$SRC/deploy/etc/server.env" "$ETC/server.env"
skeleton "$SRC/deploy/etc/agent-example.yaml" "$ETC/agent-example.yaml"
for cam in ${CAMERAS[@]+"${CAMERAS[@]}"}; do
    tmp=$(mktemp)
    sed "s/^camera: .*/camera: $cam/" "$SRC/deploy/etc/agent-example.yaml" >"$tmp"
    skeleton "$tmp" "$ETC/agent-$cam.yaml"
    rm -f "$tmp"
done
if [ "$BROKER" = yes ]; then
    put "$SRC/deploy/mosquitto/edgeseg.conf" /etc/mosquitto/conf.d/edgeseg.conf 0644
    if [ -e "$D/etc/mosquitto/edgeseg/acl" ]; then
        say "keeping /etc/mosquitto/edgeseg/acl (exists)"
    else
        install -D -m 0644 "$SRC/deploy/mosquitto/acl" "$D/etc/mosquitto/edgeseg/acl"
    fi
fi

# 4. The units, and what `systemctl enable` would link.
for u in edgeseg-server.service edgeseg-agent@.service edgeseg.target; do
    with_prefix "$SRC/systemd/$u" | put_text "$UNITDIR/$u" 0644
done
enable_link multi-user.target.wants edgeseg.target edgeseg.target
[ "$SERVER" = no ] || enable_link edgeseg.target.wants edgeseg-server.service edgeseg-server.service
for cam in ${CAMERAS[@]+"${CAMERAS[@]}"}; do
    enable_link edgeseg.target.wants "edgeseg-agent@$cam.service" edgeseg-agent@.service
done

if [ "$STAGED" = yes ]; then
    say "staged into $DESTDIR: skipping systemctl daemon-reload/enable/start (enable links written)"
elif [ ! -d /run/systemd/system ]; then
    say "systemd is not running here: skipping systemctl daemon-reload/start (enable links written)"
else
    systemctl daemon-reload
    if [ "$START" = yes ]; then
        systemctl restart edgeseg.target
    fi
fi
if [ ! -e "$D$ETC/credentials/mqtt-password" ] && [ ${#CAMERAS[@]} -gt 0 ]; then
    say "next: put this device's MQTT password in $ETC/credentials/mqtt-password (mode 0600)"
fi
say "done"
