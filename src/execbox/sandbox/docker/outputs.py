"""A run's output files, as the container hands them back: chosen inside the container by the
same rule as the native backend's (sandbox/outputs.py), sent as a tar archive after the
stdout marker (``<nonce> outputs <size> <limits hit>``), and parsed here (untrusted).

The run script lists the candidates with GNU find (``-type f``: regular files only, never
through a symlink; ``-path`` and ``-name`` narrow them by the patterns, a superset that the
host checks again exactly), visiting at most MAX_WALK_ENTRIES entries MAX_WALK_DEPTH levels
deep as the native walk does, keeps the first ``max_files + 1``, sorts them, takes them within
the bounds, and archives the chosen ones twice: once to measure, once to send (the program is
dead by then, so both are the same; a second name of a hard link comes as a copy, as its size
was counted). The archive is refused by the host past the size those bounds allow, and the
host waits for it only what the execution has left of COLLECT_TIME_S. Needs GNU find, grep,
sort and tar in the image (Debian's, as the runtime image has).
"""

from __future__ import annotations

import dataclasses
import io
import shlex
import tarfile

from execbox.sandbox.base import StageSpec
from execbox.sandbox.docker.artifacts import artifact_budget
from execbox.sandbox.docker.frames import Stream
from execbox.sandbox.outputs import (
    MAX_BYTES,
    MAX_FILES,
    MAX_WALK_DEPTH,
    MAX_WALK_ENTRIES,
    UNAVAILABLE,
    OutputFile,
    OutputRequest,
    Outputs,
    acceptable_name,
    matcher,
)
from execbox.sandbox.policy import WORKDIR

# Per file, what tar adds around its bytes at most: a header, a long-name header and its
# blocks (a path of up to 4096 bytes), a PAX header, and the padding to a 512-byte block.
TAR_FILE_OVERHEAD = 512 * 4 + 4096 + 512
TAR_END = 20480  # the end-of-archive blocks and the padding to tar's 10240-byte records


def archive_cap(request: OutputRequest) -> int:
    """The largest archive a run's chosen files can make."""
    return request.max_bytes + (request.max_files + 1) * TAR_FILE_OVERHEAD + TAR_END


def stream_archive_cap(spec: StageSpec) -> int:
    """The largest archive a stage may send after its stdout marker: a compile's artifacts,
    or a run's output files."""
    if spec.collect_files:
        return artifact_budget(spec)
    return archive_cap(spec.outputs) if spec.outputs is not None else 0


def _find_pattern(pattern: str) -> list[str]:
    """find's test for one pattern: -path (whose ``*`` crosses ``/``) and, without ``**``,
    no more parts than the pattern has (so that ``*.png`` does not reach into directories);
    with ``**``, -name for the file's own name (a bracket expression aside: fnmatch reads
    ``[[:alpha:]]`` otherwise than the host's matcher, and find must not miss a file)."""
    parts = pattern.split("/")
    # ``**/`` becomes ``*``, which matches no directory as well as many (and, beyond what
    # ``**`` means, a directory name's start: the host drops such extra matches).
    path_glob = "./" + "/".join(parts).replace("**/", "*").replace("**", "*")
    test = ["-path", path_glob]
    if "**" not in parts:
        test += ["!", "-path", "./" + "/".join(["*"] * (len(parts) + 1))]
    elif parts[-1] != "**" and "[" not in parts[-1]:
        test += ["-name", parts[-1]]
    return ["(", *test, ")"]


def find_tests(patterns: tuple[str, ...]) -> str:
    tests: list[str] = []
    for pattern in patterns:
        tests += (["-o"] if tests else []) + _find_pattern(pattern)
    return " ".join(shlex.quote(word) for word in ["(", *tests, ")"])


def outputs_script(request: OutputRequest, nonce: str) -> str:
    """Shell (dash) that chooses and sends the files, run after every process of the program
    is dead; its stdout is the attach stream's, after the program's."""
    if request.collect_time_s <= 0:
        # The execution's time for output files is spent: none are sent (unavailable).
        return f'printf "\\n{nonce} end\\n"\n'
    most = request.max_files
    tar = (
        "tr '\\n' '\\000' | tar -c -f - -C "
        f"{WORKDIR} --null --no-recursion --hard-dereference -T - 2>/dev/null"
    )
    # Every entry find visits prints a line (an empty one unless it is a candidate), so that
    # head ends the walk after MAX_WALK_ENTRIES of them, wherever the candidates are.
    candidate = f"{find_tests(request.patterns)} -type f ! -path '*[[:cntrl:]]*'"
    return (
        "_tab=$(printf '\\t'); _nl=$(printf '\\n_'); _nl=${_nl%_}\n"
        f"_found=$(cd {WORKDIR} && find . -maxdepth {MAX_WALK_DEPTH} "
        f"\\( {candidate} -printf '%s\\t%P\\n' \\) -o -printf '\\n' 2>/dev/null "
        f"| head -n {MAX_WALK_ENTRIES} | LC_ALL=C grep -m {most + 1} . "
        '| LC_ALL=C sort -t "$_tab" -k2)\n'
        "_n=0; _total=0; _files=; _bytes=; _names=\n"
        'while IFS="$_tab" read -r _size _name; do\n'
        '  [ -n "$_name" ] || continue\n'
        "  _n=$((_n + 1))\n"
        f"  if [ $_n -gt {most} ]; then _files={MAX_FILES},; break; fi\n"
        f"  if [ $((_total + _size)) -gt {request.max_bytes} ]; then\n"
        f"    _bytes={MAX_BYTES},; continue\n"
        "  fi\n"
        "  _total=$((_total + _size))\n"
        '  _names="$_names./$_name$_nl"\n'
        "done <<_EOF_\n"
        "$_found\n"
        "_EOF_\n"
        "_hit=${_files}${_bytes}\n"
        f'_size=$(printf "%s" "$_names" | {tar} | wc -c)\n'
        f'printf "\\n{nonce} outputs %s %s\\n" "$_size" "${{_hit:--}}"\n'
        f'[ "$_size" -gt {archive_cap(request)} ] || printf "%s" "$_names" | {tar}\n'
    )


def read_outputs(stdout: Stream, request: OutputRequest, collect_s: float = 0.0) -> Outputs:
    """The files of the archive after the stdout marker, checked again here: regular files
    whose names match and are acceptable, within the bounds; UNAVAILABLE when none came.
    ``collect_s`` (the time the container took to send them) is charged to the execution."""
    outputs = _read_outputs(stdout, request)
    return dataclasses.replace(outputs, collect_time_s=collect_s)


def _read_outputs(stdout: Stream, request: OutputRequest) -> Outputs:
    words = stdout.marker or []
    if stdout.archive is None or len(stdout.archive) < stdout.archive_size:
        return Outputs((), (UNAVAILABLE,))
    said = words[2].decode(errors="replace").split(",") if len(words) > 2 else []
    limits_hit = {hit for hit in said if hit in (MAX_FILES, MAX_BYTES)}
    matches = matcher(request.patterns)
    files: list[OutputFile] = []
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(bytes(stdout.archive)), mode="r:") as tar:
            for member in tar:
                name = member.name.removeprefix("./")
                parts = name.split("/")
                if not member.isreg() or any(p in ("", ".", "..") for p in parts):
                    continue
                if not (acceptable_name(name) and matches(name)):
                    continue
                if len(files) >= request.max_files:
                    limits_hit.add(MAX_FILES)
                    break
                if total + member.size > request.max_bytes:
                    limits_hit.add(MAX_BYTES)
                    continue
                content = tar.extractfile(member)
                assert content is not None
                files.append(OutputFile(name, content.read(member.size)))
                total += member.size
    except (tarfile.TarError, OSError, ValueError):
        return Outputs((), (UNAVAILABLE,))
    return Outputs(tuple(files), tuple(sorted(limits_hit)))
