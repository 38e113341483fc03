"""The native backend: a pool of unprivileged bwrap sandboxes, each used for one program.

A stage runs in a box (see box.py) that is either taken from a small warm pool, started ahead
of time off the request path, or started on the spot when the pool is empty. A box is never
reused: after its one program it is killed, and its cgroup and work dir are removed in the
background; the pool is refilled in the background too.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import shutil
import stat
import uuid
from pathlib import Path

from execbox.config import Settings
from execbox.languages import host_shell
from execbox.sandbox import policy
from execbox.sandbox.background import CLOSE_WAIT_S, BackgroundTasks
from execbox.sandbox.base import StageResult, StageSpec
from execbox.sandbox.native import cgroups, helper, seccomp, unmask, workdir
from execbox.sandbox.native.box import Box, Profile, box_pids, run_in_box, start_box
from execbox.sandbox.policy import WORKDIR
from execbox.sandbox.servers import server_alive, server_name
from execbox.sandbox.warm_pool import Expectation, WarmPool

log = logging.getLogger("execbox.sandbox")

SANDBOX_UID = 1000
SANDBOX_DIR = helper.SANDBOX_DIR
# A box waits in its cgroup with at least this much memory: bwrap sets it up in there.
MIN_START_MEMORY = 64 * 1024 * 1024
UID_POOL_SIZE = 256
# Servers on one host take disjoint uid ranges (SANDBOX_UID_BASE + 1000 k; the Docker backend
# uses +500..+999 of its base), each held by a lock that dies with its server.
UID_LOCK_DIR = Path("/run/lock/execbox")
UID_RANGE_STEP = 1000
UID_RANGES = 16


class SandboxUnavailable(Exception):
    """The host cannot run the native sandbox (no bwrap, not root, no cgroups)."""


def _root_fs_args() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            args += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            args += ["--ro-bind", top, top]
    return args


def _prepare_sandbox_dir(directory: Path, helper_path: str) -> list[str]:
    """Fill the directory every box sees read-only at /.sandbox (the stub and the few /etc
    files a program may read) and return bwrap's options for it.

    One bind of one directory, with symlinks from /etc into it, instead of a bind per file:
    bwrap re-reads the whole mount table for every bind it makes (to remount its submounts),
    which is a good part of a box's start-up cost.
    """
    if directory.exists():
        workdir.unmount_all_under(directory)
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    # A tmpfs of the server's own, mounted without noexec: the state dir may be on a noexec
    # mount (Debian's /run), and a bind keeps its source's mount flags.
    nosuid, nodev = 0x2, 0x4
    workdir.mount_tmpfs(directory, "mode=0755,size=8388608,nr_inodes=64", nosuid | nodev)
    etc = directory / "etc"
    etc.mkdir()
    shutil.copyfile(helper_path, directory / "stub")
    (directory / "stub").chmod(0o755)
    (etc / "passwd").write_text(
        f"root:x:0:0:root:/root:/bin/false\n"
        f"runner:x:{SANDBOX_UID}:{SANDBOX_UID}:runner:{policy.ENVIRONMENT['HOME']}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (etc / "group").write_text(f"root:x:0:\nrunner:x:{SANDBOX_UID}:\nnogroup:x:65534:\n")
    (etc / "hosts").write_text("127.0.0.1 localhost execbox\n::1 localhost\n")
    args = ["--perms", "0755", "--dir", "/etc"]
    for name in ("ld.so.cache", "localtime"):
        host = Path("/etc") / name
        if host.is_symlink() and os.readlink(host).startswith("/usr/"):
            args += ["--symlink", os.readlink(host), str(host)]  # e.g. a zoneinfo file
        elif host.is_file():
            # A copy taken at start: a library installed later is still found by ld.so's
            # search of the default directories.
            shutil.copyfile(host, etc / name)
    for path in etc.iterdir():
        path.chmod(0o644)
        args += ["--symlink", f"{SANDBOX_DIR}/etc/{path.name}", f"/etc/{path.name}"]
    etc.chmod(0o755)
    workdir.remount_readonly(directory, nosuid | nodev)
    return ["--ro-bind", str(directory), SANDBOX_DIR, *args]


# What bwrap's --dev makes: the harmless character devices, and links to the descriptors.
DEVICES = {
    "null": (1, 3),
    "zero": (1, 5),
    "full": (1, 7),
    "random": (1, 8),
    "urandom": (1, 9),
    "tty": (5, 0),
}
DEV_LINKS = {
    "fd": "/proc/self/fd",
    "stdin": "/proc/self/fd/0",
    "stdout": "/proc/self/fd/1",
    "stderr": "/proc/self/fd/2",
}


def _prepare_dev_dir(directory: Path) -> list[str]:
    """A /dev for every box, made once: a small read-only tmpfs holding the device nodes that
    bwrap's --dev would bind one by one into each box (six binds, each re-reading the whole
    mount table: ~0.7 ms of CPU per box here). No pseudo-terminals (no devpts)."""
    nosuid = 0x2  # devices must work here: not nodev
    directory.mkdir(exist_ok=True)
    workdir.mount_tmpfs(directory, "mode=0755,size=65536,nr_inodes=64", nosuid)
    for name, (major, minor) in DEVICES.items():
        os.mknod(directory / name, 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.chmod(directory / name, 0o666)
    for name, target in DEV_LINKS.items():
        os.symlink(target, directory / name)
    for name in ("shm", "pts"):
        (directory / name).mkdir(mode=0o755)
    workdir.remount_readonly(directory, nosuid)
    return ["--dev-bind", str(directory), "/dev"]


def claim_uid_range(first: int) -> tuple[int, int]:
    """The first uid range no other server on this host holds, and the lock that holds it:
    two servers handing out the same uid would let one's program signal the other's."""
    UID_LOCK_DIR.mkdir(parents=True, exist_ok=True)
    for k in range(UID_RANGES):
        base = first + k * UID_RANGE_STEP
        lock = UID_LOCK_DIR / f"uids-{base}.lock"
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return fd, base
    raise SandboxUnavailable(
        f"every sandbox uid range from {first} is held by another execbox server on this host "
        f"(at most {UID_RANGES}); set EXECBOX_SANDBOX_UID_BASE to another range"
    )


def _remove_server_dir(directory: Path) -> None:
    """Remove a server's state; never while anything is still mounted below it (a toolchain
    bind would be deleted through it)."""
    if not directory.exists():
        return
    if workdir.unmount_all_under(directory):
        shutil.rmtree(directory, ignore_errors=True)
    else:
        log.error("not removing %s: mounts below it could not be unmounted", directory)


class NativeSandbox:
    name = "native"
    interactive = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = server_name()
        self.state = Path(settings.state_dir)
        self.work_root = self.state / self.server / "work"
        self.maximum = settings.max_limits()
        self._uids: asyncio.Queue[int] = asyncio.Queue()
        self._base_args: list[str] = []
        self._seccomp = b""
        self._cgroups: cgroups.CgroupDriver | None = None
        self._bwrap: str | None = None
        self._helper = ""
        self._toolchains: dict[str, str] = {}
        self._background = BackgroundTasks()
        self._pool: WarmPool[Profile, Box] = WarmPool(
            settings.warm_pool,
            self._start_box,
            self._dispose_soon,
            lambda box: box.alive,
            most=settings.warm_pool + 2 * settings.max_concurrency,
        )
        self._live: set[Box] = set()
        self._start_limits: dict[Profile, tuple[int, int]] = {}
        self._uid_lock: int | None = None

    async def start(self) -> None:
        if os.geteuid() != 0:
            raise SandboxUnavailable("the native sandbox must be started as root")
        self._bwrap = shutil.which("bwrap")
        if self._bwrap is None:
            raise SandboxUnavailable("bubblewrap (bwrap) is not installed")
        try:
            self._cgroups = cgroups.detect(
                self.server, self.settings.cgroup_version, self.settings.cgroup
            )
        except cgroups.CgroupError as err:
            raise SandboxUnavailable(str(err)) from err
        self._clean_dead_servers()
        self._cgroups.prepare()
        unmask.unmask_proc()
        self._seccomp = seccomp.build_filter()
        self.work_root.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state, 0o711)
        try:
            built = await asyncio.to_thread(helper.build, self.state / "bin")
        except helper.HelperBuildError as err:
            raise SandboxUnavailable(str(err)) from err
        sandbox_dir = self.state / self.server / "sandbox"
        sandbox_args = await asyncio.to_thread(_prepare_sandbox_dir, sandbox_dir, str(built))
        # The helper runs from the server's own tmpfs, whatever the state dir's mount options.
        self._helper = str(sandbox_dir / "stub")
        dev_args = await asyncio.to_thread(_prepare_dev_dir, self.state / self.server / "dev")
        self._base_args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            # The stub is pid 1: no reaper process, and nothing inside can signal it.
            "--as-pid-1",
            "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID),
            "--hostname", "execbox",
            *_root_fs_args(),
            *sandbox_args,
            "--proc", "/proc",
            *dev_args,
        ]  # fmt: skip
        self._uid_lock, base = claim_uid_range(self.settings.sandbox_uid_base)
        for uid in range(base, base + UID_POOL_SIZE):
            self._uids.put_nowait(uid)
        log.info("native sandbox ready: cgroup v%d, server %s", self._cgroups.version, self.server)

    def shell(self, command: str, image: str | None) -> str:
        return host_shell(command)

    def _clean_dead_servers(self) -> None:
        """Remove cgroups, mounts and work dirs that a server that died left behind."""
        assert self._cgroups is not None
        names = self._cgroups.servers()
        if self.state.is_dir():
            names.update(p.name for p in self.state.iterdir() if p.name.startswith("srv-"))
        for name in names:
            if name == self.server or server_alive(name):
                continue
            log.warning("cleaning up after dead server %s", name)
            self._cgroups.remove_server(name)
            _remove_server_dir(self.state / name)

    async def close(self) -> None:
        await self._pool.close()
        for box in list(self._live):
            with contextlib.suppress(ProcessLookupError, OSError):
                box.process.kill()
        await self._background.wait(CLOSE_WAIT_S)
        if self._cgroups is not None:
            await asyncio.to_thread(self._cgroups.remove_server, self.server)
        self._toolchains.clear()
        _remove_server_dir(self.state / self.server)
        if self._uid_lock is not None:
            os.close(self._uid_lock)
            self._uid_lock = None

    def expect(self, spec: StageSpec) -> Expectation:
        return self._pool.expect(self._profile(spec))

    def _profile(self, spec: StageSpec) -> Profile:
        profile = Profile.of(spec)
        # Boxes of this profile started from now on wait with this stage's limits, so that the
        # next stage like it needs no cgroup writes (a different one sets its own).
        memory = spec.limits.memory_mb * 1024 * 1024
        self._start_limits[profile] = (max(memory, MIN_START_MEMORY), box_pids(spec.limits))
        return profile

    async def run(self, spec: StageSpec) -> StageResult:
        assert self._cgroups is not None, "start() first"
        profile = self._profile(spec)
        box = await self._pool.take(profile) or await self._new_box(profile)
        if isinstance(box, str):
            return StageResult(None, None, b"", b"", internal_error=box)
        self._live.add(box)
        try:
            result = await run_in_box(box, spec, self.settings.cpus_per_stage)
            # Every process of the stage is dead by now: reading its files is safe.
            if spec.collect_files and result.internal_error is None:
                assert box.work is not None  # a collecting stage's profile has a host work dir
                budget = spec.limits.memory_mb * 1024 * 1024
                result.files = await asyncio.to_thread(workdir.collect_files, box.work, budget)
            return result
        except Exception as err:
            log.exception("sandbox failure")
            return StageResult(None, None, b"", b"", internal_error=f"sandbox failure: {err}")
        finally:
            self._live.discard(box)
            self._dispose(box)
            # Refilled after the run rather than during it: starting a box takes CPU time
            # that the program's own start would otherwise compete with.
            self._pool.refill_soon(profile)

    # One box's start and end.

    async def _start_box(self, profile: Profile) -> Box:
        box = await self._new_box(profile)
        if isinstance(box, str):
            raise SandboxUnavailable(box)
        return box

    async def _new_box(self, profile: Profile) -> Box | str:
        """A started box, or why it could not start."""
        assert self._cgroups is not None and self._bwrap is not None
        uid = await self._uids.get()
        stage = uuid.uuid4().hex[:16]
        # A host work dir only for a stage whose files the host reads back (a compile).
        work = self.work_root / stage if profile.host_work else None
        size = self.maximum.memory_mb * 1024 * 1024
        memory, pids = self._start_limits.get(profile, (size, 16))
        cpus = self.settings.cpus_per_stage
        steps = self._cgroups.launch_steps(stage, memory, pids, cpus)
        if work is not None:
            steps += ["tmpfs", str(work), workdir.tmpfs_options(size, uid)]
        try:
            cgroup = self._cgroups.adopt(stage, memory, pids)
            box = await start_box(
                launcher=self._helper,
                bwrap=self._bwrap,
                options=self._options(profile, work),
                steps=steps,
                stage=stage,
                uid=uid,
                work=work,
                cgroup=cgroup,
                profile=profile,
                seccomp_program=self._seccomp,
            )
        except Exception as err:
            log.exception("sandbox start failure")
            box = f"sandbox failure: {err}"
        if isinstance(box, str):
            self._background.spawn(self._cleanup(stage, work, uid))
        return box

    async def _dispose_soon(self, box: Box) -> None:
        self._dispose(box)

    def _dispose(self, box: Box) -> None:
        """Kill a box and remove its cgroup and work dir, off the caller's path."""
        self._background.spawn(self._cleanup(box.stage, box.work, box.uid, box))

    async def _cleanup(
        self, stage: str, work: Path | None, uid: int, box: Box | None = None
    ) -> None:
        assert self._cgroups is not None
        try:
            if box is not None:
                box.kill_init()
                await box.process.wait()
                box.close_fds()
            await asyncio.to_thread(self._remove_stage, stage, work)
        except Exception:
            log.exception("cleanup of stage %s failed", stage)
        finally:
            self._uids.put_nowait(uid)

    def _remove_stage(self, stage: str, work: Path | None) -> None:
        """Remove a dead box's cgroup (after killing any straggler) and its host work dir."""
        assert self._cgroups is not None
        self._cgroups.remove(stage)
        if work is not None:
            self._dispose_workdir(work)

    @staticmethod
    def _dispose_workdir(work: Path) -> None:
        if os.path.ismount(work):
            workdir.unmount(work)
        with contextlib.suppress(FileNotFoundError):
            work.rmdir()

    def _toolchain_source(self, path: str) -> str:
        """Where bwrap finds a toolchain directory: a read-only bind of it, made once, in a
        place the sandbox's uid can reach (the toolchain may live under /root, say)."""
        source = self._toolchains.get(path)
        if source is None:
            target = self.state / self.server / "toolchains" / str(len(self._toolchains))
            target.mkdir(parents=True, exist_ok=True)
            workdir.bind_readonly(path, target)
            source = self._toolchains[path] = str(target)
        return source

    def _options(self, profile: Profile, work: Path | None) -> list[str]:
        """bwrap's options. They travel through --args FD, so that the sandbox's pid 1 shows
        no host paths in its command line."""
        args = list(self._base_args)
        for mount in profile.mounts:
            args += ["--ro-bind", self._toolchain_source(mount), mount]
        tmp_size = str(self.maximum.memory_mb * 1024 * 1024)
        args += ["--size", tmp_size, "--tmpfs", "/tmp"]
        args += ["--size", tmp_size, "--tmpfs", "/dev/shm"]
        if work is not None:
            args += ["--bind", str(work), WORKDIR]
        else:
            # Only in the box: no host mount, which every bwrap would read in the mount table.
            args += ["--size", tmp_size, "--perms", "0700", "--tmpfs", WORKDIR]
        args += ["--chdir", WORKDIR, "--remount-ro", "/"]
        args += ["--clearenv"]
        for key, value in policy.environment(dict(profile.env)).items():
            args += ["--setenv", key, value]
        return args
