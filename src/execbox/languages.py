"""Languages as data: load ``languages.toml`` and resolve each toolchain on this host.

Resolution happens once, at start: shims (pyenv, rustup) are resolved to the real binaries and
install directories, so that sandboxes bind only those. The native backend resolves on this host;
the Docker backend resolves inside each language's image (its paths are the image's, not ours).
"""

from __future__ import annotations

import dataclasses
import os
import re
import string
import subprocess
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import PurePosixPath

from execbox.config import Limits
from execbox.language_dialects import (
    Judge0Dialect,
    Judge0Id,
    LanguageError,
    PistonDialect,
    check_judge0_ids,
    judge0_dialect,
    piston_dialect,
)

DISCOVER_TIMEOUT_S = 20
__all__ = ["Judge0Dialect", "Judge0Id", "Language", "LanguageError", "PistonDialect"]

# Runs one discover command (a shell command line) where the language's programs will run,
# in the language's image when it has one, and returns its standard output.
Shell = Callable[[str, str | None], str]


@dataclass(frozen=True)
class LeanRun:
    """A faster run command for programs that need only what the language ships."""

    run: tuple[str, ...]
    imports: re.Pattern[str]
    modules: frozenset[str]
    unless: tuple[str, ...]

    def applies(self, files: list[tuple[str, bytes]], suffix: str) -> bool:
        local = {PurePosixPath(name).parts[0].removesuffix(suffix) for name, _ in files}
        for name, content in files:
            if not name.endswith(suffix):
                continue
            text = content.decode(errors="replace")
            if any(word in text for word in self.unless):
                return False
            for match in self.imports.finditer(text):
                for clause in filter(None, match.groups()):
                    for item in clause.split(","):
                        words = item.split()
                        top = words[0].split(".")[0] if words else ""
                        if top and top not in self.modules and top not in local:
                            return False
        return True


@dataclass(frozen=True)
class Language:
    name: str
    aliases: tuple[str, ...]
    entry: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None
    version_command: tuple[str, ...]
    mounts: tuple[str, ...]
    env: dict[str, str]
    limit_overrides: dict[str, int]
    compile_limit_overrides: dict[str, int]
    entry_pattern: re.Pattern[str] | None = None
    lean: LeanRun | None = None
    # The container image its programs run in (Docker backend); None = the backend's default.
    image: str | None = None
    # Whether a request may add compiler flags (appended to the compile command).
    compile_options: bool = False
    # Why the toolchain could not be resolved on this host; None when it was.
    unavailable_reason: str | None = None
    # Listed but never offered here (no toolchain exists for this platform): a request for it
    # is the client's mistake, not a host to fix.
    never_available: bool = False
    discovered: dict[str, str] = field(default_factory=dict)
    # Aliases naming the installed version ("python{major}.{minor}"), known once it is probed.
    version_aliases: tuple[str, ...] = ()
    judge0: Judge0Dialect = field(default_factory=Judge0Dialect)
    piston: PistonDialect = field(default_factory=PistonDialect)

    def with_version(self, version: str) -> Language:
        """This language with its version aliases spelled out for the installed version."""
        parts = re.findall(r"\d+", version)
        if len(parts) < 2 or not self.version_aliases:
            return self
        values = {
            "major": parts[0],
            "minor": parts[1],
            "patch": parts[2] if len(parts) > 2 else "0",
        }
        spelled = tuple(alias.format(**values) for alias in self.version_aliases)
        return dataclasses.replace(self, aliases=self.aliases + spelled, version_aliases=())

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    def entry_for_code(self, code: str) -> str:
        """The entry file name for a request that sends only ``code``."""
        if self.entry_pattern is not None:
            match = self.entry_pattern.search(code)
            if match:
                return match.group(1) + PurePosixPath(self.entry).suffix
        return self.entry

    def run_template(self, files: list[tuple[str, bytes]]) -> tuple[str, ...]:
        """The run command for these files: the lean one when it applies."""
        suffix = PurePosixPath(files[0][0]).suffix if files else ""
        if self.lean is not None and self.lean.applies(files, suffix):
            return self.lean.run
        return self.run

    def command(self, template: tuple[str, ...], entry: str, files: list[str], memory_mb: int):
        """Expand a command template for one stage."""
        suffix = PurePosixPath(entry).suffix
        sources = [f for f in files if PurePosixPath(f).suffix == suffix] or [entry]
        values = {
            "entry": entry,
            "entry_stem": PurePosixPath(entry).stem,
            "memory_mb": str(memory_mb),
        }
        argv: list[str] = []
        for part in template:
            if part == "{sources}":
                argv.extend(sources)
            else:
                argv.append(part.format(**values))
        return argv


# What a command template may still hold once the discovered values are in.
STAGE_PLACEHOLDERS = {"entry": "x", "entry_stem": "x", "memory_mb": "1"}


def _check_template(name: str, template: tuple[str, ...]) -> None:
    """A template that would fail at run time (a stray brace, an unknown name) is refused
    when the file is read, not answered with an error on every request."""
    for part in template:
        if part == "{sources}":
            continue
        try:
            part.format(**STAGE_PLACEHOLDERS)
        except (KeyError, ValueError, IndexError) as err:
            raise LanguageError(
                f"{name}: command word {part!r} has an unknown placeholder or a stray brace "
                f"({err!r}; write a literal brace as {{{{ or }}}})"
            ) from None


def _substitute(text: str, values: dict[str, str]) -> str:
    """Replace the ``{name}`` placeholders that are known, leave the others for later."""
    names = {name for _, name, _, _ in string.Formatter().parse(text) if name}
    for name in names & values.keys():
        text = text.replace("{" + name + "}", values[name])
    return text


def host_shell(command: str, image: str | None = None) -> str:
    """Run a discover command on this host (the native backend's programs run here)."""
    done = subprocess.run(
        ["sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=DISCOVER_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise LanguageError(done.stderr.strip()[-300:] or f"exit code {done.returncode}")
    return done.stdout


def _discover(name: str, commands: dict[str, str], shell: Shell, image: str | None):
    values: dict[str, str] = {}
    for key, command in commands.items():
        line = _substitute(command, values)
        try:
            output = shell(line, image).strip()
        except (LanguageError, subprocess.SubprocessError, OSError) as err:
            raise LanguageError(f"{name}: cannot find {key} ({line!r} failed: {err})") from None
        value = output.splitlines()[-1] if output else ""
        if not value:
            raise LanguageError(f"{name}: cannot find {key} ({line!r} printed nothing)")
        values[key] = value
    return values


def _language(key: str, data: dict, shell: Shell, images: dict[str, str]) -> Language:
    name = data.get("name", key)
    if "unavailable" in data:
        return _never_available(name, data)
    try:
        entry = data["entry"]
        run = tuple(data["run"])
        version = tuple(data["version"])
    except KeyError as missing:
        raise LanguageError(f"{name}: missing field {missing}") from None
    compile_ = tuple(data["compile"]) if "compile" in data else None
    unknown = (set(data.get("limits", {})) | set(data.get("compile_limits", {}))) - set(
        Limits.names()
    )
    if unknown:
        raise LanguageError(f"{name}: unknown limits {sorted(unknown)}")
    image = images.get(name) or data.get("image")
    reason = None
    values: dict[str, str] = {}
    try:
        values = _discover(name, data.get("discover", {}), shell, image)
    except LanguageError as err:
        reason = str(err)

    def expand(items) -> tuple[str, ...]:
        return tuple(_substitute(item, values) for item in items)

    mounts = tuple(m for m in expand(data.get("mounts", [])) if "{" not in m)
    if reason is None:
        for template in (run, compile_ or ()):
            _check_template(name, expand(template))
    if reason is None and shell is host_shell:
        missing = [m for m in mounts if not os.path.isdir(m)]
        binary = expand(run)[0] if compile_ is None else expand(compile_)[0]
        if missing:
            reason = f"{name}: toolchain directory {missing[0]} does not exist"
        elif binary.startswith("/") and not os.access(binary, os.X_OK):
            reason = f"{name}: {binary} is not executable"
    if reason is not None and data.get("install"):
        reason += _install_hint(str(data["install"]))
    pattern = data.get("entry_pattern")
    aliases = [str(alias) for alias in data.get("aliases", [])]
    lean = None
    if "lean" in data and reason is None:
        spec = data["lean"]
        lean = LeanRun(
            run=expand(spec["run"]),
            imports=re.compile(spec["imports"], re.MULTILINE),
            modules=frozenset(_substitute(spec.get("modules", ""), values).split()),
            unless=tuple(spec.get("unless", [])),
        )
    return Language(
        name=name,
        aliases=tuple(alias for alias in aliases if "{" not in alias),
        version_aliases=tuple(alias for alias in aliases if "{" in alias),
        entry=entry,
        run=expand(run),
        compile=expand(compile_) if compile_ else None,
        version_command=expand(version),
        mounts=mounts,
        env={k: _substitute(v, values) for k, v in data.get("env", {}).items()},
        limit_overrides=dict(data.get("limits", {})),
        compile_limit_overrides=dict(data.get("compile_limits", {})),
        entry_pattern=re.compile(pattern) if pattern else None,
        lean=lean,
        image=image,
        compile_options=bool(data.get("compile_options", False)) and compile_ is not None,
        unavailable_reason=reason,
        discovered=values,
        judge0=judge0_dialect(name, data.get("judge0", {}), data.get("judge0_extra", {})),
        piston=piston_dialect(name, data.get("piston", {})),
    )


def _never_available(name: str, data: dict) -> Language:
    """A language listed only to say why it is not offered (``unavailable = "why"``)."""
    unknown = set(data) - {"name", "aliases", "unavailable", "judge0", "judge0_extra"}
    if unknown:
        raise LanguageError(f"{name}: an unavailable language has no {sorted(unknown)}")
    return Language(
        name=name,
        aliases=tuple(str(alias) for alias in data.get("aliases", [])),
        entry="",
        run=(),
        compile=None,
        version_command=(),
        mounts=(),
        env={},
        limit_overrides={},
        compile_limit_overrides={},
        unavailable_reason=str(data["unavailable"]),
        never_available=True,
        judge0=judge0_dialect(name, data.get("judge0", {}), data.get("judge0_extra", {})),
    )


def _install_hint(packages: str) -> str:
    """How to get a missing toolchain, on either backend."""
    return (
        f"; install it with `apt-get install {packages}` (`make languages` installs every"
        " language; `make docker-images` rebuilds the Docker backend's image with them)"
    )


def load_languages(
    text: str | None = None,
    shell: Shell = host_shell,
    images: dict[str, str] | None = None,
    path: str | None = None,
) -> dict[str, Language]:
    """Parse the language data and resolve every toolchain; keyed by canonical name.

    The data is ``text``, else the file at ``path``, else the packaged ``languages.toml``.
    ``shell`` runs the discover commands where programs will run; ``images`` overrides the
    data's container image per language name.
    """
    if text is None and path:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    if text is None:
        text = resources.files("execbox").joinpath("languages.toml").read_text()
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise LanguageError(f"the language data is not valid TOML: {err}") from None
    languages: dict[str, Language] = {}
    for key, data in table.items():
        language = _language(key, data, shell, images or {})
        languages[language.name] = language
    check_judge0_ids(languages)
    return languages


def alias_table(languages: dict[str, Language]) -> dict[str, str]:
    """Every accepted spelling (lower case) mapped to its canonical language name."""
    table: dict[str, str] = {}
    for language in languages.values():
        for spelling in (language.name, *language.aliases):
            table.setdefault(spelling.lower(), language.name)
    return table
