"""What each API dialect needs of a language (Judge0's ids, Piston's package names), read from
its entry in ``languages.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from execbox.languages import Language


class LanguageError(Exception):
    """The language data file is malformed."""


@dataclass(frozen=True)
class Judge0Id:
    """One Judge0 CE language id this language answers to, and the name Judge0 lists it by."""

    id: int
    label: str  # "{version}" is replaced by the installed version

    @property
    def short_name(self) -> str:
        """The label without its toolchain and version: "C++ (GCC {version})" -> "C++"."""
        return self.label.split(" (")[0]


@dataclass(frozen=True)
class Judge0Dialect:
    """What Judge0's API needs of a language."""

    ids: tuple[Judge0Id, ...] = ()
    # The name Judge0 saves the source as; None: the language's own (``entry``, or the name
    # ``entry_pattern`` finds in the code).
    source_file: str | None = None
    # Judge0 Extra CE's ids for it (a table of its own, served under /extra).
    extra_ids: tuple[Judge0Id, ...] = ()
    # The program is the submission's additional_files alone (Judge0's "Multi-file program"):
    # source_code is not needed.
    project: bool = False

    def ids_of(self, flavour: str) -> tuple[Judge0Id, ...]:
        """The ids of one Judge0 flavour: "ce" or "extra"."""
        return self.extra_ids if flavour == "extra" else self.ids


@dataclass(frozen=True)
class PistonDialect:
    """What Piston's API needs of a language."""

    # The name of the Piston package that provides it, where it differs (``node``, ``gcc``).
    runtime: str | None = None
    # False where Piston's package compiles and runs in one command (``go run``, ``java
    # File.java``): its answers then show only a run stage.
    compile_stage: bool = True


def judge0_dialect(name: str, data: dict, extra: dict) -> Judge0Dialect:
    def ids(table: dict, key: str) -> tuple[Judge0Id, ...]:
        try:
            return tuple(Judge0Id(int(id), str(label)) for id, label in table.items())
        except ValueError:
            raise LanguageError(f"{name}: {key} are numbers") from None

    unknown = (set(data) - {"ids", "source_file", "project"}) | (set(extra) - {"ids"})
    if unknown:
        raise LanguageError(f"{name}: unknown judge0 fields {sorted(unknown)}")
    source_file = data.get("source_file")
    return Judge0Dialect(
        ids=ids(data.get("ids", {}), "judge0.ids"),
        source_file=str(source_file) if source_file else None,
        extra_ids=ids(extra.get("ids", {}), "judge0_extra.ids"),
        project=bool(data.get("project", False)),
    )


def piston_dialect(name: str, data: dict) -> PistonDialect:
    unknown = set(data) - {"runtime", "compile_stage"}
    if unknown:
        raise LanguageError(f"{name}: unknown piston fields {sorted(unknown)}")
    runtime = data.get("runtime")
    return PistonDialect(str(runtime) if runtime else None, bool(data.get("compile_stage", True)))


def check_judge0_ids(languages: dict[str, Language]) -> None:
    for flavour, key in (("ce", "judge0"), ("extra", "judge0_extra")):
        owners: dict[int, str] = {}
        for language in languages.values():
            for judge0_id in language.judge0.ids_of(flavour):
                if judge0_id.id in owners:
                    raise LanguageError(
                        f"{language.name}: {key} id {judge0_id.id} is {owners[judge0_id.id]}'s too"
                    )
                owners[judge0_id.id] = language.name
