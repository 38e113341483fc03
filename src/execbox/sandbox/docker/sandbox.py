"""The Docker backend: a fresh container per stage, with a warm pool of started containers.

Each container runs exactly one program and is then removed (never reused). A small pool per
profile (image, environment, creation-time limits) is kept created and started off the request
path, refilled after each run. Every container carries labels naming this server and host, so
that a server that starts removes whatever a dead one left behind.

The Docker SDK is blocking: every Engine API call runs in this backend's own thread pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from execbox.config import Settings
from execbox.languages import LanguageError
from execbox.sandbox import cgroup_files
from execbox.sandbox.background import CLOSE_WAIT_S, BackgroundTasks
from execbox.sandbox.base import StageResult, StageSpec
from execbox.sandbox.docker import container as box
from execbox.sandbox.docker import stream
from execbox.sandbox.docker.artifacts import collect_artifacts
from execbox.sandbox.docker.container import LABEL, USER, Profile
from execbox.sandbox.docker.outputs import read_outputs
from execbox.sandbox.servers import server_alive, server_name
from execbox.sandbox.warm_pool import Expectation, WarmPool

log = logging.getLogger("execbox.sandbox")

THREADS = 64
# Each container runs as its own host uid, from SANDBOX_UID_BASE + 500 on (the native
# backend's pool starts at the base).
UID_OFFSET, UID_COUNT = 500, 500
# An idle container holds memory and processes on the engine's host (and one of the uids).
MOST_IDLE_CONTAINERS = 64
DISCOVER_TIMEOUT_S = 120  # a helper container that answers discover commands lives this long


class DockerUnavailable(Exception):
    """No Docker engine answers, or the default image is missing."""


class DockerSandbox:
    name = "docker"
    interactive = False  # the program's stdin travels in its archive

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.server = server_name()
        self.host = socket.gethostname()
        self.labels = {LABEL: "1", f"{LABEL}.server": self.server, f"{LABEL}.host": self.host}
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="docker")
        self._client = None
        self._pool: WarmPool[Profile, str] = WarmPool(
            settings.warm_pool,
            self._start_container,
            self._remove_soon,
            most=settings.warm_pool + settings.max_concurrency,
            most_idle=MOST_IDLE_CONTAINERS,
        )
        self._helpers: dict[str, str] = {}
        self._background = BackgroundTasks()
        self._live: set[str] = set()
        # Each started container's CPU time, read from its cgroup on this host (None where the
        # engine runs elsewhere: then only RLIMIT_CPU and the wall clock apply). Found when the
        # container starts, off the request path.
        self._cpu_readers: dict[str, Callable[[], int | None] | None] = {}
        base = settings.sandbox_uid_base + UID_OFFSET
        self._free_uids = set(range(base, base + UID_COUNT))
        self._uids: dict[str, int] = {}  # each live container's uid
        self._uid_lock = threading.Lock()

    @property
    def api(self):
        assert self._client is not None, "start() first"
        return self._client.api

    async def _call(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._threads, function, *args)

    async def start(self) -> None:
        await self._call(self._connect)
        await self._call(self._clean_dead_servers)
        log.info("docker sandbox ready: engine %s, server %s", self.api.base_url, self.server)

    def _connect(self) -> None:
        from docker.errors import DockerException, ImageNotFound

        import docker

        try:
            self._client = docker.from_env(max_pool_size=THREADS)
            self._client.ping()
        except DockerException as err:
            raise DockerUnavailable(f"no Docker engine answers: {err}") from None
        try:
            self.api.inspect_image(self.settings.docker_image)
        except ImageNotFound:
            raise DockerUnavailable(
                f"the image {self.settings.docker_image} is missing: build it with "
                "`make docker-images`, or set EXECBOX_DOCKER_IMAGE"
            ) from None

    def _ours(self) -> list[dict]:
        return self.api.containers(all=True, filters={"label": f"{LABEL}.host={self.host}"})

    def _clean_dead_servers(self) -> None:
        for found in self._ours():
            server = found["Labels"].get(f"{LABEL}.server", "")
            if server != self.server and not server_alive(server):
                log.warning("removing container %s of dead server %s", found["Id"][:12], server)
                self._remove(found["Id"])

    def _remove(self, container: str) -> None:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            self.api.remove_container(container, force=True)

    async def close(self) -> None:
        await self._pool.close()
        doomed = list(self._live) + list(self._helpers.values())
        self._helpers.clear()
        await self._background.wait(CLOSE_WAIT_S)
        if self._client is not None:
            await asyncio.gather(*(self._call(self._remove, c) for c in doomed))
            # Anything of ours that is still there (a refill that raced the close).
            for found in await self._call(self._ours):
                if found["Labels"].get(f"{LABEL}.server") == self.server:
                    await self._call(self._remove, found["Id"])
            self._client.close()
        self._threads.shutdown(wait=False, cancel_futures=True)

    # Discovering toolchains inside the images.

    def shell(self, command: str, image: str | None) -> str:
        from docker.errors import DockerException

        image = image or self.settings.docker_image
        # On a loaded host an exec has been seen to end "successfully" with no output at all
        # (a toolchain then looked missing): a silent answer is asked for once more.
        for _ in range(2):
            try:
                helper = self._helpers.get(image) or self._start_helper(image)
                result = self.api.exec_create(helper, ["sh", "-c", command], user=f"{USER}:{USER}")
                output = self.api.exec_start(result["Id"], demux=True)
                code = self.api.exec_inspect(result["Id"])["ExitCode"]
            except DockerException as err:
                raise LanguageError(f"in image {image}: {err}") from None
            stdout, stderr = (part or b"" for part in output)
            if code != 0:
                detail = stderr.decode(errors="replace").strip()[-300:]
                raise LanguageError(detail or f"exit {code}")
            if stdout or stderr:
                break
        return stdout.decode(errors="replace")

    def _start_helper(self, image: str) -> str:
        profile = Profile(image, (), 256, 64, 16)
        config = box.container_config(self.api, profile, 1.0, self.labels)
        config.update(Cmd=["sleep", str(DISCOVER_TIMEOUT_S)], OpenStdin=False, StdinOnce=False)
        # Toolchains are found with the image's own environment (its PATH), as the native
        # backend finds them with the host's; programs get the policy's.
        config["Env"] = []
        config["HostConfig"]["AutoRemove"] = True
        helper = self.api.create_container_from_config(config)["Id"]
        self.api.start(helper)
        self._helpers[image] = helper
        return helper

    # Running a stage.

    def expect(self, spec: StageSpec) -> Expectation:
        if not spec.keep_warm:
            return Expectation.none()
        return self._pool.expect(Profile.of(spec, self.settings.docker_image))

    async def run(self, spec: StageSpec) -> StageResult:
        if self._helpers:
            # Discovery is over once programs run: its helper containers can go.
            helpers, self._helpers = list(self._helpers.values()), {}
            for helper in helpers:
                await self._remove_soon(helper)
        profile = Profile.of(spec, self.settings.docker_image)
        container = await self._pool.take(profile)
        try:
            if container is None:
                container = await self._start_container(profile)
            self._live.add(container)
            return await self._run_in(container, spec)
        except Exception as err:
            log.exception("docker sandbox failure")
            return StageResult(None, None, b"", b"", internal_error=f"docker failure: {err}")
        finally:
            if container is not None:
                await self._remove_soon(container)
            if spec.keep_warm:
                self._pool.refill_soon(profile)

    async def _run_in(self, container: str, spec: StageSpec) -> StageResult:
        nonce = box.new_nonce()
        payload = box.archive(spec, nonce)
        sockets: list[socket.socket] = []

        def attached() -> stream.Outcome:
            params = {"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
            response = self.api.attach_socket(container, params=params)
            sockets.append(sock := response._sock)
            try:
                cpu_ns = self._cpu_readers.get(container)
                return stream.send_and_read(sock, payload, spec, nonce, cpu_ns)
            finally:
                # Closed before the container is killed: the engine holds a container's exit
                # until its attached streams are drained, so a kill with an unread stream waits.
                sock.close()
                response.close()

        future = asyncio.get_running_loop().run_in_executor(self._threads, attached)
        try:
            outcome = await asyncio.shield(future)
        except asyncio.CancelledError:
            # The client went away: end the stream; the container is removed in run().
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(Exception):
                await future
            raise
        oom_killed, exit_status = False, None
        if outcome.ended:
            state = await self._call(self._state, container)
            oom_killed, exit_status = bool(state.get("OOMKilled")), state.get("ExitCode")
        result = stream.judge(outcome, spec, oom_killed, exit_status)
        if spec.collect_files and result.internal_error is None and result.limit is None:
            collect_artifacts(result, outcome.streams.stdout, spec)
        if spec.outputs is not None and result.internal_error is None:
            # Up to OUTPUTS_MAX_BYTES of archive to parse: off the event loop.
            result.outputs = await self._call(
                read_outputs, outcome.streams.stdout, spec.outputs, outcome.collect_s
            )
        return result

    def _state(self, container: str) -> dict:
        from docker.errors import NotFound

        with contextlib.suppress(NotFound):
            self.api.wait(container, timeout=stream.EXIT_WAIT_S)
        try:
            return self.api.inspect_container(container)["State"]
        except NotFound:
            return {}

    async def _start_container(self, profile: Profile) -> str:
        return await self._call(self._create, profile)

    async def _remove_soon(self, container: str) -> None:
        """Forget a container and remove it (killing what runs in it) in the background."""
        self._live.discard(container)
        self._cpu_readers.pop(container, None)
        self._background.spawn(self._remove_and_free(container))

    async def _remove_and_free(self, container: str) -> None:
        uid = self._uids.pop(container, None)
        try:
            await self._call(self._remove, container)
        except Exception:
            # Its processes may live on: the uid stays taken rather than be shared.
            log.exception("removing container %s failed; its uid %s is not reused", container, uid)
            return
        self._free_uid(uid)

    def _take_uid(self) -> int:
        with self._uid_lock:  # containers are created on several threads
            if not self._free_uids:
                raise RuntimeError(f"all {UID_COUNT} container uids are in use")
            # At random: two servers on one host are unlikely to pick the same one at once.
            uid = random.choice(tuple(self._free_uids))
            self._free_uids.discard(uid)
            return uid

    def _free_uid(self, uid: int | None) -> None:
        if uid is not None:
            with self._uid_lock:
                self._free_uids.add(uid)

    def _create(self, profile: Profile) -> str:
        uid = self._take_uid()
        cpus = self.settings.cpus_per_stage
        container = None
        try:
            config = box.container_config(self.api, profile, cpus, self.labels, uid)
            container = self.api.create_container_from_config(config)["Id"]
            self._uids[container] = uid
            self.api.start(container)
            pid = self.api.inspect_container(container)["State"]["Pid"]
            self._cpu_readers[container] = cgroup_files.cpu_time_reader(pid)
        except Exception:
            if container is not None:
                self._uids.pop(container, None)
                try:
                    self._remove(container)
                except Exception:
                    log.exception("removing container %s failed; uid %s kept", container, uid)
                    raise
            self._free_uid(uid)
            raise
        return container
