"""deploy/install.sh and uninstall.sh, run into staging roots (DESTDIR) only.

A staged install must behave as a package build: the same tree every time, nothing done
to the host (no systemctl, no user creation), and the enable links `systemctl enable`
would make. The repo's .venv is used through --venv-from so no virtualenv is copied.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from .conftest import (
    CAMERA,
    INSTALL,
    UNINSTALL,
    VENV,
    install_into,
    require,
    run_script,
)


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under root: kind, permission bits, and content hash or link target."""
    tree = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            tree[rel] = ("link", os.readlink(path))
        elif stat.S_ISDIR(st.st_mode):
            tree[rel] = ("dir", stat.S_IMODE(st.st_mode))
        else:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            tree[rel] = ("file", stat.S_IMODE(st.st_mode), digest)
    return tree


def test_install_twice_gives_the_same_tree(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    install_into(first)
    once = snapshot(first)
    install_into(first)
    assert snapshot(first) == once
    install_into(second)
    assert snapshot(second) == once
    assert "etc/systemd/system/edgeseg-server.service" in once  # not an empty comparison


def test_staged_install_modes(staged):
    tree = snapshot(staged)
    assert tree["etc/edgeseg/credentials"] == ("dir", 0o700)
    assert tree["etc/edgeseg/server.env"][1] == 0o640
    assert tree[f"etc/edgeseg/agent-{CAMERA}.yaml"][1] == 0o640
    assert tree["etc/systemd/system/edgeseg-agent@.service"][1] == 0o644
    assert tree["opt/edgeseg/bin/edgeseg"][1] == 0o755


def test_reinstall_keeps_the_admins_config_and_restores_units(tmp_path):
    stage = tmp_path / "stage"
    install_into(stage)
    env_file = stage / "etc/edgeseg/server.env"
    env_file.write_text("TF_CPP_MIN_LOG_LEVEL=3\n")
    unit = stage / "etc/systemd/system/edgeseg-server.service"
    pristine = unit.read_bytes()
    unit.write_text("[Unit]\nDescription=edited\n")
    result = install_into(stage)
    assert env_file.read_text() == "TF_CPP_MIN_LOG_LEVEL=3\n"
    assert "keeping /etc/edgeseg/server.env" in result.stdout
    assert unit.read_bytes() == pristine


def test_staged_install_does_not_touch_the_host(tmp_path):
    """systemctl, systemd-sysusers, useradd, chown/chgrp are shadowed by recorders."""
    fake_bin, log = tmp_path / "bin", tmp_path / "calls.log"
    fake_bin.mkdir()
    for tool in ["systemctl", "systemd-sysusers", "systemd-tmpfiles", "useradd",
                 "groupadd", "chown", "chgrp"]:
        script = fake_bin / tool
        script.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\n')
        script.chmod(0o755)
    env = {**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}"}
    result = run_script(INSTALL, f"--destdir={tmp_path / 'stage'}", f"--venv-from={VENV}",
                        f"--camera={CAMERA}", env=env)
    assert result.returncode == 0, result.stderr
    assert not log.exists(), log.read_text()
    assert "skipping systemctl" in result.stdout
    assert "skipping systemd-sysusers" in result.stdout


def test_enable_links_are_what_systemctl_enable_makes(staged, tmp_path):
    """`systemctl --root` (offline, no manager needed) enables our units in a copy."""
    systemctl = require("systemctl")
    units = staged / "etc/systemd/system"
    root = tmp_path / "root"
    shutil.copytree(units, root / "etc/systemd/system", symlinks=True,
                    ignore=shutil.ignore_patterns("*.wants"))
    subprocess.run([systemctl, f"--root={root}", "enable", "edgeseg.target",
                    "edgeseg-server.service", f"edgeseg-agent@{CAMERA}.service"],
                   capture_output=True, check=True, timeout=30)

    def links(base: Path) -> dict[str, str]:
        return {str(p.relative_to(base)): os.readlink(p) for p in base.rglob("*")
                if p.is_symlink()}

    ours = links(units)
    assert ours == links(root / "etc/systemd/system")
    assert f"edgeseg.target.wants/edgeseg-agent@{CAMERA}.service" in ours


def test_no_server_leaves_the_server_disabled(tmp_path):
    stage = tmp_path / "stage"
    install_into(stage, "--no-server")
    wants = stage / "etc/systemd/system/edgeseg.target.wants"
    assert sorted(p.name for p in wants.iterdir()) == [f"edgeseg-agent@{CAMERA}.service"]
    assert (stage / "etc/systemd/system/edgeseg-server.service").exists()


def test_prefix_is_written_into_the_units(tmp_path):
    stage = tmp_path / "stage"
    install_into(stage, "--prefix=/usr/local/edgeseg")
    unit = (stage / "etc/systemd/system/edgeseg-agent@.service").read_text()
    assert "ExecStart=/usr/local/edgeseg/bin/edgeseg agent" in unit
    assert "/opt/edgeseg" not in unit
    assert (stage / "usr/local/edgeseg/bin/edgeseg").exists()
    assert not (stage / "opt").exists()


@pytest.mark.parametrize(("args", "message"), [
    ([], "with --destdir use --venv-from"),
    (["--no-venv", "--camera=bad/name"], "camera name 'bad/name'"),
    (["--no-venv", "--prefix=relative"], "must be an absolute path"),
    (["--no-venv", "--bogus"], "unknown option --bogus"),
])
def test_refusals(tmp_path, args, message):
    result = run_script(INSTALL, f"--destdir={tmp_path}", *args)
    assert result.returncode == 2
    assert message in result.stderr


def test_uninstall_keeps_config_unless_purged(tmp_path):
    stage = tmp_path / "stage"
    install_into(stage)
    (stage / "etc/edgeseg/credentials/mqtt-password").write_text("secret\n")
    result = run_script(UNINSTALL, f"--destdir={stage}")
    assert result.returncode == 0, result.stderr
    left = {k for k, v in snapshot(stage).items() if v[0] != "dir"}
    assert left == {
        "etc/edgeseg/agent-example.yaml", f"etc/edgeseg/agent-{CAMERA}.yaml",
        "etc/edgeseg/batching_parameters.txt", "etc/edgeseg/models.config",
        "etc/edgeseg/monitoring.config", "etc/edgeseg/server.env",
        "etc/edgeseg/credentials/mqtt-password", "etc/mosquitto/edgeseg/acl",
        "etc/sysusers.d/edgeseg.conf"}
    result = run_script(UNINSTALL, f"--destdir={stage}", "--purge")
    assert result.returncode == 0, result.stderr
    assert list(stage.iterdir()) == []
    # Twice is harmless.
    assert run_script(UNINSTALL, f"--destdir={stage}", "--purge").returncode == 0


def test_shell_scripts_parse_and_pass_shellcheck():
    for script in (INSTALL, UNINSTALL):
        assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (Debian package: shellcheck)")
    result = subprocess.run(["shellcheck", str(INSTALL), str(UNINSTALL)],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout


REAL_INSTALL = r"""
set -euo pipefail
for d in etc opt var/lib; do
    mkdir -p "$T/$d/upper" "$T/$d/work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir=$T/$d/upper,workdir=$T/$d/work" "/$d"
done
bash "$INSTALL" --venv-from="$VENV" --camera=front
bash "$INSTALL" --venv-from="$VENV" --camera=front
getent passwd edgeseg | cut -d: -f6
stat -c 'config %G %a' /etc/edgeseg/agent-front.yaml
stat -c 'credentials %U %a' /etc/edgeseg/credentials
stat -c 'models %U %a' /var/lib/edgeseg/models
readlink /etc/systemd/system/edgeseg.target.wants/edgeseg-agent@front.service
test -x /opt/edgeseg/bin/edgeseg && echo bin ok
bash "$UNINSTALL" --purge
getent passwd edgeseg || echo user gone
test ! -e /etc/systemd/system/edgeseg-server.service && test ! -e /etc/edgeseg && echo files gone
"""


def test_install_into_the_real_root_in_a_private_mount_namespace(tmp_path):
    """The non-staged path — user creation, tmpfiles, chgrp — run for real, with overlays
    over /etc, /opt and /var/lib inside `unshare --mount`, so the host never sees it."""
    if os.geteuid() != 0:
        pytest.skip("needs root (for unshare --mount and the overlays)")
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"unshare --mount is not permitted here: {probe.stderr.decode().strip()}")
    if not (VENV / "bin" / "edgeseg").exists():
        pytest.skip(f"{VENV}/bin/edgeseg is missing: run `make test` (it builds .venv)")
    def host_user() -> int:
        return subprocess.run(["getent", "passwd", "edgeseg"], capture_output=True,
                              check=False).returncode

    before = host_user()
    env = {**os.environ, "T": str(tmp_path), "INSTALL": str(INSTALL),
           "UNINSTALL": str(UNINSTALL), "VENV": str(VENV)}
    result = subprocess.run(["unshare", "--mount", "--propagation", "private", "bash", "-c",
                             REAL_INSTALL], capture_output=True, text=True, env=env,
                            timeout=120, check=False)
    if "overlay" in result.stderr and "mount" in result.stderr and result.returncode:
        pytest.skip(f"overlayfs is not available here: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "/var/lib/edgeseg\n" in out                     # the user, with its home
    assert "config edgeseg 640" in out
    assert "credentials root 700" in out
    assert "models root 755" in out
    assert "/etc/systemd/system/edgeseg-agent@.service" in out
    assert "bin ok" in out and "user gone" in out and "files gone" in out
    assert host_user() == before  # the host's user database was never touched
    assert not Path("/etc/systemd/system/edgeseg-server.service").exists() or before == 0
