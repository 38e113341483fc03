"""Judge0's descriptive routes, per edition: its languages (each edition has its own ids),
statuses, about, configuration and system."""

from __future__ import annotations

import os
import platform

from fastapi import APIRouter, Request
from fastapi.responses import Response

from execbox.api.judge0_limits import judge0_limits
from execbox.api.judge0_model import (
    STATUSES,
    Flavour,
    Judge0Error,
    compile_option_languages,
)
from execbox.engine import Engine
from execbox.engine.catalog import Runtime
from execbox.languages import Judge0Id


def _engine(request: Request) -> Engine:
    return request.app.state.engine


def listed_name(runtime: Runtime, judge0_id: Judge0Id) -> str | None:
    """The name Judge0 lists an id by: with the installed version, as written for a language
    never offered here, None for one whose toolchain is missing on this host."""
    if runtime.language.never_available:
        return judge0_id.label
    if not runtime.available:
        return None
    return judge0_id.label.format(version=runtime.version)


def add_info_routes(router: APIRouter, flavour: Flavour) -> None:
    def table(request: Request) -> dict[int, tuple[Runtime, Judge0Id]]:
        return _engine(request).catalog.judge0_ids(flavour.key)

    @router.get("/languages")
    async def languages(request: Request) -> list[dict]:
        """The languages a submission may use (Judge0: the active ones)."""
        return [
            {"id": id, "name": listed_name(runtime, judge0_id)}
            for id, (runtime, judge0_id) in table(request).items()
            if runtime.available
        ]

    @router.get("/languages/all")
    async def all_languages(request: Request) -> list[dict]:
        """Every id, those never offered here shown as Judge0 shows retired ones (archived)."""
        return [
            {"id": id, "name": name, "is_archived": runtime.language.never_available}
            for id, (runtime, judge0_id) in table(request).items()
            if (name := listed_name(runtime, judge0_id))
        ]

    @router.get("/languages/{language_id}")
    async def language(request: Request, language_id: int) -> dict:
        runtime, judge0_id = table(request).get(language_id, (None, None))
        name = listed_name(runtime, judge0_id) if runtime and judge0_id else None
        if runtime is None or name is None:
            raise Judge0Error(f"language with id {language_id} doesn't exist", status_code=404)
        lang = runtime.language
        if lang.never_available:
            return {"id": language_id, "name": name, "is_archived": True, "source_file": None,
                    "compile_cmd": None, "run_cmd": None}  # fmt: skip
        return {
            "id": language_id,
            "name": name,
            "is_archived": False,
            "source_file": None if lang.judge0.project else lang.judge0.source_file or lang.entry,
            "compile_cmd": " ".join(lang.compile) if lang.compile else None,
            "run_cmd": " ".join(lang.run),
        }

    @router.get("/statuses")
    async def statuses(request: Request) -> list[dict]:
        return [{"id": id, "description": text} for id, text in STATUSES.items()]

    @router.get("/about")
    async def about() -> dict:
        from execbox import __version__

        return {
            "version": flavour.version,
            "homepage": "https://judge0.com",
            "source_code": "https://github.com/judge0/judge0",
            "maintainer": f"execbox ({flavour.title} API compatible)",
            "execbox": __version__,
        }

    @router.get("/config_info")
    async def config_info(request: Request) -> dict:
        settings = _engine(request).settings
        catalog = _engine(request).catalog
        allowed = judge0_limits(settings)
        defaults, maxima = allowed.defaults, allowed.maxima
        return {
            "maintenance_mode": False,
            "enable_wait_result": True,
            "enable_compiler_options": True,
            "allowed_languages_for_compile_options": compile_option_languages(catalog, flavour),
            "enable_command_line_arguments": True,
            "enable_submission_delete": False,
            "enable_callbacks": True,
            "callbacks_max_tries": settings.callback_max_tries,
            "callbacks_timeout": settings.callback_timeout_s,
            "enable_additional_files": True,
            "max_queue_size": settings.max_pending_submissions,
            "cpu_time_limit": defaults["cpu_time_limit"],
            "max_cpu_time_limit": maxima["cpu_time_limit"],
            "cpu_extra_time": defaults["cpu_extra_time"],
            "max_cpu_extra_time": maxima["cpu_extra_time"],
            "wall_time_limit": defaults["wall_time_limit"],
            "max_wall_time_limit": maxima["wall_time_limit"],
            "memory_limit": settings.run_memory_mb * 1024,
            "max_memory_limit": maxima["memory_limit"],
            "stack_limit": defaults["stack_limit"],
            "max_stack_limit": maxima["stack_limit"],
            "max_processes_and_or_threads": settings.run_processes,
            "max_max_processes_and_or_threads": maxima["max_processes_and_or_threads"],
            "enable_per_process_and_thread_time_limit": False,
            "allow_enable_per_process_and_thread_time_limit": False,
            "enable_per_process_and_thread_memory_limit": False,
            "allow_enable_per_process_and_thread_memory_limit": False,
            "max_file_size": defaults["max_file_size"],
            "max_max_file_size": maxima["max_file_size"],
            "number_of_runs": defaults["number_of_runs"],
            "max_number_of_runs": maxima["number_of_runs"],
            "redirect_stderr_to_stdout": False,
            "max_extract_size": settings.max_request_bytes // 1024,
            "enable_batched_submissions": True,
            "max_submission_batch_size": settings.judge0_max_batch,
            "submission_cache_duration": 1.0,
            "use_docs_as_homepage": False,
            "allow_enable_network": False,
            "enable_network": False,
        }

    @router.get("/system_info")
    async def system_info() -> dict:
        return {
            "Architecture": platform.machine(),
            "CPU(s)": os.cpu_count(),
            "Kernel": platform.release(),
            "Mem": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024),
        }

    @router.post("/authenticate")
    async def authenticate(request: Request) -> Response:
        # The router's caller_of answers 401 unless the token (X-Auth-Token) is one of the keys.
        return Response(status_code=200)

    @router.post("/authorize")
    async def authorize(request: Request) -> Response:
        return Response(status_code=200)
