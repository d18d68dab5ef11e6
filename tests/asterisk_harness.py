"""A real Asterisk 22 for the tests: Debian sid in a chroot, run with the project's own configuration.

Debian 12 has no Asterisk; Debian unstable (sid) ships Asterisk 22. `ensure_chroot()` builds a sid
chroot with Asterisk once and keeps it outside the repository; `AsteriskServer` installs
`asterisk/*.conf`, `dialplans/*.conf` and the test-only contexts (`tests/asterisk/`) into it and
runs Asterisk there. The chroot shares the host's network, so AMI (127.0.0.1:5038) and FastAGI
servers started by the tests on 127.0.0.1 connect both ways. The ports are fixed by the project's
configuration (AMI 5038, SIP 5060): one Asterisk at a time, concurrent test runs take turns.

Needs root (debootstrap, chroot, mount). Pitfalls met: sid's `Release` may be past its
Valid-Until; `<chroot>/var/run` is a symlink to the absolute `/run`, so run directories are made
from inside the chroot; Asterisk must run as its own user (as root it cannot open its astdb).

Lives in tests/ as a plain module (not tests/asterisk/__init__.py): pytest puts tests/ on sys.path,
and a package named `asterisk` there would shadow pyst2's `asterisk` that the IVR imports.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO / "asterisk"
DIALPLAN_DIR = REPO / "dialplans"
TEST_CONTEXTS = REPO / "tests" / "asterisk" / "extensions_test.conf"

CHROOT_ENV = "BURGERNET_ASTERISK_CHROOT"
MIRROR_ENV = "BURGERNET_DEBIAN_MIRROR"  # only when the machine's apt sources name no Debian archive
DEFAULT_CHROOT = Path.home() / ".cache" / "burgernet" / "asterisk-sid"
PACKAGES = ("asterisk", "asterisk-core-sounds-en-gsm")
MARKER = ".burgernet-chroot-complete"  # written last: a chroot without it is half-built

AMI_HOST, AMI_PORT, SIP_PORT = "127.0.0.1", 5038, 5060  # as in asterisk/manager.conf, pjsip.conf
AMI_USER = "burgernet-test"
HOST_PACKAGES = ("debootstrap",)  # plus coreutils/mount/util-linux, always present on Debian

_CHROOT_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "DEBIAN_FRONTEND": "noninteractive",
    "HOME": "/root",
    # A proxy the machine needs for downloads is needed by debootstrap and apt in the chroot too.
    **{k: v for k, v in os.environ.items() if k.lower() in ("http_proxy", "https_proxy", "no_proxy")},
}
_DEBIAN_SUITE = re.compile(
    r"^(sid|unstable|testing|stable|oldstable|oldoldstable|experimental"
    r"|buster|bullseye|bookworm|trixie|forky|duke)(-updates|-backports|-proposed-updates)?$"
)


class AsteriskUnavailable(RuntimeError):
    """The real Asterisk cannot run here; the message says what is missing and how to fix it."""


def _say(message: str) -> None:
    print(f"[asterisk-harness {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the chroot --------------------------------------------------------------------------------


def default_chroot() -> Path:
    """Where the chroot lives: $BURGERNET_ASTERISK_CHROOT, else ~/.cache/burgernet/asterisk-sid."""
    return Path(os.environ.get(CHROOT_ENV) or DEFAULT_CHROOT).expanduser().resolve()


def require_root() -> None:
    """Raise AsteriskUnavailable unless this process can build and run the chroot."""
    if os.geteuid() != 0:
        raise AsteriskUnavailable(
            "the Asterisk tests need root (debootstrap, chroot and mount run a real Asterisk 22 in a "
            "Debian sid chroot); run the tests as root, e.g. `sudo make test`"
        )
    for tool in ("chroot", "mount", "umount"):
        if shutil.which(tool) is None:
            raise AsteriskUnavailable(
                f"`{tool}` is not installed; on Debian: apt-get install coreutils mount"
            )


def debian_mirror() -> str:
    """The main Debian archive this machine's apt uses (first match; never the security archive)."""
    if os.environ.get(MIRROR_ENV):
        return os.environ[MIRROR_ENV]
    sources = [Path("/etc/apt/sources.list")]
    listdir = Path("/etc/apt/sources.list.d")
    if listdir.is_dir():
        sources += sorted(p for p in listdir.iterdir() if p.suffix in (".list", ".sources"))
    for path in sources:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        entries = _deb822_entries(text) if path.suffix == ".sources" else _one_line_entries(text)
        for uri, suites in entries:
            if "security" in uri or any("security" in s for s in suites):
                continue
            if any(_DEBIAN_SUITE.match(s) for s in suites):
                return uri
    raise AsteriskUnavailable(
        f"no Debian archive found in this machine's apt sources (/etc/apt/sources.list*); "
        f"set {MIRROR_ENV} to a Debian mirror URL"
    )


def _one_line_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for line in text.splitlines():
        line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()  # drop [options]
        if len(line) >= 3 and line[0] == "deb":
            yield line[1].rstrip("/"), [line[2]]


def _deb822_entries(text: str) -> Iterator[tuple[str, list[str]]]:
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            if line[0].isspace() and key:  # continuation line
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" in fields.get("types", "").split() and fields.get("enabled", "yes").lower() != "no":
            uris = fields.get("uris", "").split()
            if uris:
                yield uris[0].rstrip("/"), fields.get("suites", "").split()


def _ensure_debootstrap() -> str:
    found = shutil.which("debootstrap")
    if found:
        return found
    if shutil.which("apt-get") is None:
        raise AsteriskUnavailable(
            "debootstrap is missing and there is no apt-get to install it; install debootstrap"
        )
    _say("installing debootstrap on the host (apt-get)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *HOST_PACKAGES]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise AsteriskUnavailable(f"could not install debootstrap: {done.stderr.strip()[-500:]}")
    return shutil.which("debootstrap") or "/usr/sbin/debootstrap"


@contextlib.contextmanager
def _locked(path: Path, waiting_message: str, timeout: float | None = None) -> Iterator[None]:
    """An exclusive fcntl lock on `path`, shared by every process on this machine."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            _say(waiting_message)
            deadline = None if timeout is None else time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() > deadline:
                        raise AsteriskUnavailable(
                            f"gave up after {timeout:.0f} s: {waiting_message}"
                        ) from None
                    time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_chroot(cache_dir: Path | None = None) -> Path:
    """The chroot with Asterisk installed, built once (about a minute) and reused afterwards."""
    root = (cache_dir or default_chroot()).resolve()
    marker = root / MARKER
    if _marker_packages(marker) >= set(PACKAGES):
        return root
    require_root()
    with _locked(root.with_name(root.name + ".lock"), f"waiting: another process is building {root}"):
        if _marker_packages(marker) >= set(PACKAGES):  # built meanwhile by the lock's holder
            return root
        if marker.exists():  # complete, but an older package list
            _say(f"installing {' '.join(PACKAGES)} into {root}")
            _install_packages(root, root.with_name(root.name + ".build.log"))
            _write_marker(root, build_seconds=json.loads(marker.read_text()).get("build_seconds"))
            return root
        _build(root)
    return root


def _marker_packages(marker: Path) -> set[str]:
    try:
        return set(json.loads(marker.read_text())["packages"])
    except (OSError, ValueError, KeyError, TypeError):
        return set()


def _build(root: Path) -> None:
    debootstrap = _ensure_debootstrap()
    mirror = debian_mirror()
    log = root.with_name(root.name + ".build.log")
    if root.exists():
        _say(f"removing the half-built chroot {root}")
        _remove_tree(root)
    started = time.monotonic()
    log.write_text("")
    _say(f"debootstrap --variant=minbase sid {root} (Debian archive from apt sources; log: {log})")
    _run_logged([debootstrap, "--variant=minbase", "sid", str(root), mirror], log, "debootstrap")
    _say(f"debootstrap done in {time.monotonic() - started:.0f} s; installing {' '.join(PACKAGES)}")
    if not (root / "etc/resolv.conf").exists() and Path("/etc/resolv.conf").exists():
        shutil.copy2("/etc/resolv.conf", root / "etc/resolv.conf")
    _install_packages(root, log)
    seconds = round(time.monotonic() - started, 1)
    _write_marker(root, build_seconds=seconds)
    _say(f"chroot ready in {seconds:.0f} s: {_chroot_version(root)}")


def _install_packages(root: Path, log: Path) -> None:
    # No daemon may start inside the chroot while packages are configured.
    policy = root / "usr/sbin/policy-rc.d"
    policy.write_text("#!/bin/sh\nexit 101\n")
    policy.chmod(0o755)
    # sid's Release file on a mirror can be past its Valid-Until date.
    _run_logged(
        _in_chroot(root, "apt-get", "-q", "-o", "Acquire::Check-Valid-Until=false", "update"),
        log,
        "apt-get update",
    )
    install = ("apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES)
    _run_logged(_in_chroot(root, *install), log, "apt-get install")
    _run_logged(_in_chroot(root, "apt-get", "clean"), log, "apt-get clean")


def _write_marker(root: Path, build_seconds: float | None) -> None:
    info = {"packages": list(PACKAGES), "asterisk": _chroot_version(root), "build_seconds": build_seconds}
    (root / MARKER).write_text(json.dumps(info, indent=1) + "\n")


def _chroot_version(root: Path) -> str:
    done = subprocess.run(_in_chroot(root, "asterisk", "-V"), capture_output=True, text=True, env=_CHROOT_ENV)
    if done.returncode != 0:
        raise AsteriskUnavailable(f"asterisk is not runnable in {root}: {done.stderr.strip()}")
    return done.stdout.strip()


def _in_chroot(root: Path, *command: str) -> list[str]:
    return ["chroot", str(root), *command]


def _run_logged(command: list[str], log: Path, what: str) -> None:
    with open(log, "a") as out:
        out.write(f"\n$ {' '.join(command)}\n")
        out.flush()
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, env=_CHROOT_ENV, stdin=subprocess.DEVNULL
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise AsteriskUnavailable(f"{what} failed (exit {done.returncode}); end of {log}:\n{tail}")


def _mounts_under(root: Path) -> list[Path]:
    """Mount points at or below `root`, deepest first."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = Path(line.split()[4].replace("\\040", " "))
        if point == root or root in point.parents:
            points.append(point)
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def _unmount_all(root: Path) -> None:
    for point in _mounts_under(root):
        done = subprocess.run(["umount", str(point)], capture_output=True, text=True)
        if done.returncode != 0 and point in _mounts_under(root):
            raise AsteriskUnavailable(f"cannot unmount {point}: {done.stderr.strip()}; unmount it by hand")


def _remove_tree(root: Path) -> None:
    # A mount left inside (a bind-mounted /dev!) must never be deleted through the chroot.
    _unmount_all(root)
    subprocess.run(["rm", "-rf", "--one-file-system", str(root)], check=True)


# --- the running Asterisk ----------------------------------------------------------------------


class AsteriskServer:
    """Asterisk in the chroot, configured from the project's asterisk/ and dialplans/ only."""

    def __init__(
        self,
        chroot: Path,
        *,
        config_dir: Path = CONFIG_DIR,
        dialplan_dir: Path = DIALPLAN_DIR,
        test_contexts: Path | None = TEST_CONTEXTS,
        boot_timeout: float = 30.0,
        turn_timeout: float = 900.0,
    ):
        self.chroot = Path(chroot).resolve()
        self.config_dir, self.dialplan_dir, self.test_contexts = config_dir, dialplan_dir, test_contexts
        self.boot_timeout, self.turn_timeout = boot_timeout, turn_timeout
        self._secret = secrets.token_urlsafe(24)
        self._process: subprocess.Popen | None = None
        self._turn: contextlib.ExitStack | None = None
        self._fresh = True
        self.boot_messages: list[str] = []  # messages.log as it was when the last start completed
        # Dialplan globals kept across restarts (globals_local.conf, read at each start); a global
        # set over AMI (Setvar) is gone after a restart.
        self.globals: dict[str, str] = {}
        # Files a test adds next to the configuration (e.g. a SIP trunk as pjsip_local.conf, made
        # from asterisk/pjsip_trunk.conf.template), written at every start and reload.
        self.local_files: dict[str, str] = {}

    # AMI connection details, for the tests' AMI clients.
    ami_host = property(lambda self: AMI_HOST)
    ami_port = property(lambda self: AMI_PORT)
    ami_user = property(lambda self: AMI_USER)
    ami_secret = property(lambda self: self._secret)

    @property
    def log_path(self) -> Path:
        """Asterisk's own log (asterisk/logger.conf `messages.log`), emptied at each start."""
        return self.chroot / "var/log/asterisk/messages.log"

    @property
    def console_path(self) -> Path:
        """What the Asterisk process wrote to stdout/stderr (kept across restarts of one server)."""
        return self.chroot / "var/log/asterisk/console.log"

    def __enter__(self) -> AsteriskServer:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        """Install the configuration, mount /proc and /dev, start Asterisk and wait until it is booted."""
        if self._process is not None:
            raise RuntimeError("Asterisk is already running")
        require_root()
        if not (self.chroot / MARKER).exists():
            raise AsteriskUnavailable(
                f"{self.chroot} is not a complete Asterisk chroot; build it with ensure_chroot()"
            )
        self._turn = contextlib.ExitStack()
        try:
            self._turn.enter_context(
                _locked(
                    self.chroot.with_name(self.chroot.name + ".run.lock"),
                    f"waiting: another test run uses the Asterisk in {self.chroot} (one at a time: fixed ports)",
                    timeout=self.turn_timeout,
                )
            )
            self._turn.callback(self._unmount)
            self._clear_leftovers()
            self._boot()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop Asterisk (gracefully, killed if it does not stop), unmount, release the turn."""
        try:
            self._halt()
        finally:
            turn, self._turn = self._turn, None
            if turn is not None:
                turn.close()  # unmounts, then releases the lock

    def restart(self, while_down: Callable[[], None] | None = None) -> None:
        """Stop and start again with the same configuration and AMI secret, keeping the turn.

        `while_down` runs after Asterisk has stopped and before it starts again.
        """
        if self._turn is None:
            raise RuntimeError("Asterisk is not running")
        try:
            self._halt()
            self._unmount()
            if while_down is not None:
                while_down()
            self._boot()
        except BaseException:
            self.stop()
            raise

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """Asterisk stopped dead inside the block (SIGSTOP): its sockets stay open, nothing answers."""
        if self._process is None:
            raise RuntimeError("Asterisk is not running")
        os.killpg(self._process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.killpg(self._process.pid, signal.SIGCONT)

    def reload(self) -> str:
        """Re-install the project's configuration and `core reload`."""
        self._install_config()
        return self.cli("core reload")

    def cli(self, command: str, timeout: float = 30) -> str:
        """Run one CLI command through `asterisk -rx` and return its output."""
        done = subprocess.run(
            _in_chroot(self.chroot, "asterisk", "-rx", command),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=_CHROOT_ENV,
        )
        if done.returncode != 0:
            output = done.stderr.strip() or done.stdout.strip()
            raise RuntimeError(f"asterisk -rx {command!r} failed ({done.returncode}): {output}")
        return done.stdout

    # -- internals --

    def _boot(self) -> None:
        if _port_open(AMI_HOST, AMI_PORT):
            raise AsteriskUnavailable(
                f"{AMI_HOST}:{AMI_PORT} is already in use (another Asterisk? `pgrep -a asterisk`); stop it first"
            )
        self._install_config()
        self._mount()
        self._launch()
        self._wait_booted()

    def _install_config(self) -> None:
        etc = self.chroot / "etc/asterisk"
        if etc.is_symlink():
            raise AsteriskUnavailable(f"{etc} is a symlink; refusing to write through it")
        if etc.exists():  # the package's sample configs out, so only ours load
            for entry in etc.iterdir():
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        (etc / "dialplans").mkdir(parents=True, exist_ok=True)
        for conf in sorted(self.config_dir.glob("*.conf")):
            shutil.copy(conf, etc / conf.name)
        for conf in sorted(self.dialplan_dir.glob("*.conf")):
            shutil.copy(conf, etc / "dialplans" / conf.name)
        if self.test_contexts is not None:
            shutil.copy(self.test_contexts, etc / "extensions_test.conf")
        if self.globals:  # dialplans/globals.conf reads it last
            (etc / "globals_local.conf").write_text("".join(f"{k} = {v}\n" for k, v in self.globals.items()))
        for name, text in self.local_files.items():
            (etc / Path(name).name).write_text(text)
        users = etc / "manager_users.conf"
        users.write_text(
            "; Written by tests/asterisk_harness.py for this test run only.\n"
            f"[{AMI_USER}]\n"
            f"secret = {self._secret}\n"
            "deny = 0.0.0.0/0.0.0.0\n"
            "permit = 127.0.0.1/255.255.255.255\n"
            "read = all\n"
            "write = all\n"
        )
        users.chmod(0o640)
        self.run_in_chroot("chown", "-R", "asterisk:asterisk", "/etc/asterisk")

    def _mount(self) -> None:
        for source, target, how in (("proc", "proc", ["-t", "proc"]), ("/dev", "dev", ["--bind"])):
            point = self.chroot / target
            if point.is_symlink() or not point.is_dir():
                raise AsteriskUnavailable(f"{point} is not a directory; rebuild the chroot")
            done = subprocess.run(["mount", *how, source, str(point)], capture_output=True, text=True)
            if done.returncode != 0:
                raise AsteriskUnavailable(
                    f"cannot mount {source} on {point}: {done.stderr.strip()} (a container without CAP_SYS_ADMIN?)"
                )

    def _unmount(self) -> None:
        _unmount_all(self.chroot)

    def _clear_leftovers(self) -> None:
        """Stop an Asterisk and unmount what a killed test run left in this chroot.

        Holding the turn makes them stale: no live run owns them. `asterisk -rx` reaches only an
        Asterisk of this chroot (through its control socket), never another one on the machine.
        """
        control = self.chroot / "run/asterisk/asterisk.ctl"
        if control.exists() and _port_open(AMI_HOST, AMI_PORT):
            _say(f"stopping an Asterisk left running in {self.chroot} by an earlier test run")
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self.cli("core stop now", timeout=10)
            deadline = time.monotonic() + 15
            while _port_open(AMI_HOST, AMI_PORT) and time.monotonic() < deadline:
                time.sleep(0.2)
        _unmount_all(self.chroot)

    def _launch(self) -> None:
        # <chroot>/var/run -> /run is absolute: made from outside it would be the host's /run/asterisk.
        self.run_in_chroot("install", "-d", "-o", "asterisk", "-g", "asterisk", "/var/run/asterisk")
        if self._fresh:  # a new test session starts without the state of earlier ones
            self.run_in_chroot(
                "sh", "-c", "rm -f /var/lib/asterisk/astdb.sqlite3 /var/spool/asterisk/outgoing/*"
            )
            self.console_path.write_text("")
            self._fresh = False
        if self.log_path.exists():
            self.log_path.write_text("")
        with open(self.console_path, "ab") as console:
            self._process = subprocess.Popen(
                _in_chroot(self.chroot, "asterisk", "-f", "-n", "-U", "asterisk", "-G", "asterisk"),
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=_CHROOT_ENV,
                start_new_session=True,  # its own process group: never hit by the terminal's signals
            )

    def _wait_booted(self) -> None:
        deadline = time.monotonic() + self.boot_timeout
        while True:
            if self._process.poll() is not None:
                raise AsteriskUnavailable(
                    f"Asterisk exited with {self._process.returncode} while starting\n{self._log_tail()}"
                )
            if _ami_banner(AMI_HOST, AMI_PORT):
                break
            if time.monotonic() > deadline:
                raise AsteriskUnavailable(
                    f"AMI did not answer on {AMI_HOST}:{AMI_PORT} within {self.boot_timeout:.0f} s\n{self._log_tail()}"
                )
            time.sleep(0.2)
        try:
            self.cli("core waitfullybooted", timeout=max(1.0, deadline - time.monotonic()))
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            raise AsteriskUnavailable(f"Asterisk did not finish booting: {exc}\n{self._log_tail()}") from exc
        self.boot_messages = (
            self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []
        )

    def _halt(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            self.cli("core stop now", timeout=10)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _say("Asterisk did not stop within 10 s; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=10)

    def run_in_chroot(self, *command: str) -> None:
        done = subprocess.run(
            _in_chroot(self.chroot, *command), capture_output=True, text=True, env=_CHROOT_ENV
        )
        if done.returncode != 0:
            raise AsteriskUnavailable(f"in the chroot, {' '.join(command)} failed: {done.stderr.strip()}")

    def _log_tail(self, lines: int = 30) -> str:
        parts = []
        for path in (self.log_path, self.console_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                parts.append(f"--- end of {path} ---\n" + "\n".join(tail))
        return "\n".join(parts)


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def _ami_banner(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as conn:
            return conn.recv(100).startswith(b"Asterisk Call Manager")
    except OSError:
        return False


class RawAMI:
    """Just enough AMI over a plain socket to log in and originate (the project's client comes later)."""

    def __init__(self, host: str, port: int, timeout: float = 15):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.lines = self.sock.makefile("rb")
        self.banner = self.lines.readline().decode().strip()

    def action(self, name: str, *fields: tuple[str, str]) -> dict[str, str]:
        """Send one action and return its response (events arriving meanwhile are skipped)."""
        action_id = uuid.uuid4().hex
        text = "".join(f"{k}: {v}\r\n" for k, v in (("Action", name), ("ActionID", action_id), *fields))
        self.sock.sendall((text + "\r\n").encode())
        while True:
            message = self.read_message()
            if "Response" in message and message.get("ActionID") == action_id:
                return message

    def wait_event(self, name: str, **match: str) -> dict[str, str]:
        """The next event `name` whose fields start with the `match` values (socket timeout applies)."""
        while True:
            message = self.read_message()
            if message.get("Event") == name and all(
                message.get(k, "").startswith(v) for k, v in match.items()
            ):
                return message

    def read_message(self) -> dict[str, str]:
        message = {}
        while True:
            line = self.lines.readline()
            if not line:
                raise ConnectionError("AMI closed the connection")
            line = line.decode().rstrip("\r\n")
            if not line:
                if message:
                    return message
                continue
            key, _, value = line.partition(":")
            message[key] = value.strip()

    def login(self, user: str, secret: str, events: str = "off") -> dict[str, str]:
        return self.action("Login", ("Username", user), ("Secret", secret), ("Events", events))

    def close(self) -> None:
        self.lines.close()
        self.sock.close()
