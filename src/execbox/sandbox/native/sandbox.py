"""The native backend: a pool of unprivileged bwrap sandboxes, each used for one program.

A stage runs in a box (see box.py) that is either taken from a small warm pool, started ahead
of time off the request path, or started on the spot when the pool is empty. A box is never
reused: after its one program it is killed, and its cgroup and work dir are removed in the
background; the pool is refilled in the background too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import uuid
from pathlib import Path

from execbox.config import Settings
from execbox.languages import host_shell
from execbox.sandbox import policy
from execbox.sandbox.background import CLOSE_WAIT_S, BackgroundTasks
from execbox.sandbox.base import StageResult, StageSpec
from execbox.sandbox.native import cgroups, helper, rootfs, seccomp, unmask, workdir
from execbox.sandbox.native.box import Box, Profile, box_pids
from execbox.sandbox.native.launch import BoxStartError, start_box
from execbox.sandbox.native.outputs import collect_outputs
from execbox.sandbox.native.supervise import run_in_box
from execbox.sandbox.native.uids import MOST_IDLE_BOXES, UidPool, UidRangesTaken
from execbox.sandbox.policy import WORKDIR
from execbox.sandbox.servers import server_alive, server_name
from execbox.sandbox.warm_pool import Expectation, WarmPool

log = logging.getLogger("execbox.sandbox")

# A box waits in its cgroup with at least this much memory: bwrap sets it up in there.
MIN_START_MEMORY = 64 * 1024 * 1024
# Host directories a toolchain mount may never be (a directory below one may: /etc/mono):
# a discovery command that printed one would hand the sandbox the host's secrets or devices.
REFUSED_MOUNTS = frozenset(["/", "/etc", "/root", "/var", "/proc", "/sys", "/dev", "/run", "/home"])


class SandboxUnavailable(Exception):
    """The host cannot run the native sandbox (no bwrap, not root, no cgroups)."""


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
        self._uids = UidPool()
        self._base_args: list[str] = []
        self._seccomp = b""
        self._cgroups: cgroups.CgroupDriver | None = None
        self._bwrap: str | None = None
        self._helper = ""
        self._toolchains: dict[str, str] = {}
        self._background = BackgroundTasks()
        self._pool: WarmPool[Profile, Box] = WarmPool(
            settings.warm_pool,
            self._new_box,
            self._dispose_soon,
            lambda box: box.alive,
            most=settings.warm_pool + 2 * settings.max_concurrency,
            most_idle=MOST_IDLE_BOXES,
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
        sandbox_args = await asyncio.to_thread(rootfs.prepare_sandbox_dir, sandbox_dir, str(built))
        # The helper runs from the server's own tmpfs, whatever the state dir's mount options.
        self._helper = str(sandbox_dir / "stub")
        dev_args = await asyncio.to_thread(rootfs.prepare_dev_dir, self.state / self.server / "dev")
        self._base_args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--die-with-parent",
            "--new-session",
            # The stub is pid 1: no reaper process, and nothing inside can signal it.
            "--as-pid-1",
            "--uid", str(rootfs.SANDBOX_UID),
            "--gid", str(rootfs.SANDBOX_UID),
            "--hostname", "execbox",
            *rootfs.root_fs_args(),
            *sandbox_args,
            "--proc", "/proc",
            *dev_args,
        ]  # fmt: skip
        try:
            self._uid_lock = self._uids.claim_range(self.settings.sandbox_uid_base)
        except UidRangesTaken as err:
            raise SandboxUnavailable(str(err)) from None
        log.info("native sandbox ready: cgroup v%d, server %s", self._cgroups.version, self.server)

    # Programs run on this host: discovery runs here too (and languages.py, seeing the host's
    # own shell, also checks that the toolchain's directories and binaries exist).
    shell = staticmethod(host_shell)

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
        if self.refused_mount(spec.mounts) is not None:
            return Expectation.none()
        return self._pool.expect(self._profile(spec))

    def _profile(self, spec: StageSpec) -> Profile:
        profile = Profile.of(spec)
        # Boxes of this profile started from now on wait with this stage's limits, so that the
        # next stage like it needs no cgroup writes (a different one sets its own).
        memory = spec.limits.memory_mb * 1024 * 1024
        self._start_limits[profile] = (max(memory, MIN_START_MEMORY), box_pids(spec.limits))
        return profile

    def refused_mount(self, mounts: tuple[str, ...]) -> str | None:
        """Why one of a stage's toolchain mounts is refused, or None: a whole system
        directory, or the service's state dir, by its path as given or as resolved."""
        state = {os.path.realpath(self.state), os.path.normpath(self.state)}
        for mount in mounts:
            for path in (os.path.normpath(mount), os.path.realpath(mount)):
                if path in REFUSED_MOUNTS or path in state:
                    return (
                        f"toolchain directory {mount} is refused: a whole system directory "
                        "(or the service's state dir) is never mounted into the sandbox"
                    )
        return None

    async def run(self, spec: StageSpec) -> StageResult:
        assert self._cgroups is not None, "start() first"
        if (refused := self.refused_mount(spec.mounts)) is not None:
            return StageResult(None, None, b"", b"", internal_error=refused)
        profile = self._profile(spec)
        try:
            box = await self._pool.take(profile) or await self._new_box(profile)
        except BoxStartError as err:
            return StageResult(None, None, b"", b"", internal_error=str(err))
        self._live.add(box)
        try:
            result = await run_in_box(box, spec, self.settings.cpus_per_stage)
            # Every process of the stage is dead by now: reading its files is safe.
            if spec.collect_files and result.internal_error is None:
                assert box.work is not None  # a collecting stage's profile has a host work dir
                budget = spec.limits.memory_mb * 1024 * 1024
                result.files = await asyncio.to_thread(workdir.collect_files, box.work, budget)
            if spec.outputs is not None and result.internal_error is None:
                assert box.work is not None  # so is the profile of a stage that wants outputs
                result.outputs = await asyncio.to_thread(collect_outputs, box.work, spec.outputs)
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

    async def _new_box(self, profile: Profile) -> Box:
        """A started box; BoxStartError when it did not start (what it made is removed)."""
        assert self._cgroups is not None and self._bwrap is not None
        uid = await self._uids.take(self._pool.evict_idle)
        stage = uuid.uuid4().hex[:16]
        # A host work dir only for a stage whose files the host reads back (a compile, outputs).
        work = self.work_root / stage if profile.host_work else None
        size = self.maximum.memory_mb * 1024 * 1024
        memory, pids = self._start_limits.get(profile, (size, 16))
        cpus = self.settings.cpus_per_stage
        steps = self._cgroups.launch_steps(stage, memory, pids, cpus)
        if work is not None:
            steps += ["tmpfs", str(work), workdir.tmpfs_options(size, uid)]
        try:
            cgroup = self._cgroups.adopt(stage, memory, pids)
            return await start_box(
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
        except BoxStartError:
            self._background.spawn(self._cleanup(stage, work, uid))
            raise
        except Exception as err:
            log.exception("sandbox start failure")
            self._background.spawn(self._cleanup(stage, work, uid))
            raise BoxStartError(f"sandbox failure: {err}") from err
        except BaseException:
            # Cancelled (its client left): what was made goes, and the uid comes back.
            self._background.spawn(self._cleanup(stage, work, uid))
            raise

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
            self._uids.give_back(uid)

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
            # run() refuses these first; a box of such a profile must never start either.
            if (refused := self.refused_mount((path,))) is not None:
                raise BoxStartError(refused)
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
