"""`catsdogs bisect`: which package, and which release of it, first changes a probe.

Given a good and a bad environment as package pins (`tensorflow==2.18.1,keras==3.7.0`
against `tensorflow==2.21.0,keras==3.15.1`), the search walks from good to bad moving ONE
package at a time. Each step moves one package to its bad version; a step whose probe is
still identical to the good one is taken, and the next package moves. The first step
whose probe differs holds the change: that package's released versions between its two
ends (PEP 440 order, pre-releases only when asked) are searched by bisection, the other
packages held where the walk left them. A combination that will not install or import
is skipped with its reason (as asv's `find` skips a commit that fails to build): a step
that cannot be installed is tried with another package first, and a bisection steps
around a skipped version; when the skipped versions hide the first change, the result
says between which versions it lies instead of naming one.

The environments are made by an `EnvMaker` (venvs.VenvMaker builds cached virtual
environments with pip; the tests use a deterministic one in process), and two probes are
compared by `diff.diff_probes`, so "changed" means exactly what `probe-diff` reports.
Assumed, as every bisection assumes: once a release changes the probe, later releases in
the searched range do not change it back.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Callable, Protocol

from catsdogs.attribution.diff import KIND_WORDS, ProbeDiff, diff_probes
from catsdogs.attribution.fileformat import ProbeFile
from catsdogs.errors import UsageError

PIN = re.compile(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s=<>!~,;]+)")
PIN_EXAMPLE = "tensorflow==2.18.1,keras==3.7.0"


def parse_pins(text: str, option: str) -> dict[str, str]:
    """`name==version,...` -> {normalised name: version}, in the order given; one line
    quoting the bad part otherwise (a range, a bad version, a package named twice)."""
    from packaging.utils import canonicalize_name
    from packaging.version import InvalidVersion, Version

    pins: dict[str, str] = {}
    parts = [part.strip() for part in str(text).split(",")]
    if not any(parts):
        raise UsageError(f"{option}: expected pins like {PIN_EXAMPLE}, got {text!r}")
    for part in parts:
        match = PIN.fullmatch(part)
        if not match:
            raise UsageError(f"{option}: expected name==version pins like {PIN_EXAMPLE}, "
                             f"got {part!r}")
        name, version = canonicalize_name(match.group(1)), match.group(2)
        try:
            Version(version)
        except InvalidVersion:
            raise UsageError(f"{option}: {part!r} is not a PEP 440 version; expected e.g. "
                             "2.18.1") from None
        if name in pins:
            raise UsageError(f"{option}: {name} is pinned twice in {text!r}; expected each "
                             "package once")
        pins[name] = version
    return pins


def changed_packages(good: dict[str, str], bad: dict[str, str]) -> list[str]:
    """The packages whose version differs, in --good's order; refused unless both ends
    pin the same packages and at least one differs."""
    from packaging.version import Version

    if set(good) != set(bad):
        only_good = ", ".join(sorted(set(good) - set(bad))) or "none"
        only_bad = ", ".join(sorted(set(bad) - set(good))) or "none"
        raise UsageError(f"--good and --bad pin different packages (only in --good: "
                         f"{only_good}; only in --bad: {only_bad}); expected the same "
                         "packages, each with its good and its bad version")
    changed = [name for name in good if Version(good[name]) != Version(bad[name])]
    if not changed:
        raise UsageError(f"--good and --bad pin the same versions ({pins_text(good)}); "
                         "expected at least one package whose version differs")
    return changed


def pins_text(pins: dict[str, str]) -> str:
    return ",".join(f"{name}=={version}" for name, version in pins.items())


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What an environment gave: its probe, or why it gave none (install or import
    failed, the probe failed)."""

    probe: ProbeFile | None
    reason: str = ""


class EnvMaker(Protocol):
    """Makes (or finds cached) the environment of some pins and probes in it."""

    def probe(self, pins: dict[str, str]) -> Outcome: ...

    def versions(self, package: str) -> list[str]: ...


@dataclasses.dataclass(frozen=True)
class BisectResult:
    """The search's end: the line it ends with, and the exit code (0: a release named;
    1: none could be named, the line says why)."""

    line: str
    exit_code: int
    package: str | None = None
    last_good: str | None = None
    first_bad: str | None = None


def _describe(result: ProbeDiff) -> str:
    """`model3 changed at layer 1.1 random_rotation (RandomRotation) (forward output:
    ...)` for every variant that differs."""
    parts = []
    for variant in result.variants:
        if variant.identical:
            continue
        first = variant.findings[0]
        if first.kind in KIND_WORDS and first.kind != "final_weights":
            parts.append(f"{variant.alias} changed at layer {first.where} "
                         f"({KIND_WORDS[first.kind]}: {first.change.text()})")
        else:
            parts.append(f"{variant.alias} changed: {first.text()}")
    return "; ".join(parts)


class Search:
    """One bisection: the maker, the progress sink, and every outcome so far (a
    combination is never probed twice)."""

    def __init__(self, maker: EnvMaker, say: Callable[[str], None] | None = None,
                 pre: bool = False) -> None:
        self.maker = maker
        self.say = say or (lambda line: None)
        self.pre = pre
        self.outcomes: dict[tuple, Outcome] = {}
        self.reference: ProbeFile | None = None  # --good's probe
        self.bad: ProbeFile | None = None  # --bad's probe

    def outcome(self, pins: dict[str, str]) -> Outcome:
        key = tuple(sorted(pins.items()))
        if key not in self.outcomes:
            self.outcomes[key] = self.maker.probe(dict(pins))
            self._log(pins, self.outcomes[key])
        return self.outcomes[key]

    def _log(self, pins: dict[str, str], outcome: Outcome) -> None:
        if outcome.probe is None:
            self.say(f"bisect: {pins_text(pins)}: skipped ({outcome.reason})")
        elif self.reference is None:
            self.say(f"bisect: {pins_text(pins)}: probed (the good end)")
        else:
            self.say(f"bisect: {pins_text(pins)}: " + (
                "identical to --good" if self.same(outcome.probe) else "differs from --good"))

    def same(self, probe: ProbeFile) -> bool:
        return diff_probes(self.reference, probe).identical

    # ------------------------------------------------------------ the walk

    def run(self, good: dict[str, str], bad: dict[str, str]) -> BisectResult:
        """The whole search from good to bad (see the module's docstring)."""
        packages = changed_packages(good, bad)
        for option, pins in (("--good", good), ("--bad", bad)):
            outcome = self.outcome(pins)
            if outcome.probe is None:
                raise UsageError(f"{option} {pins_text(pins)}: no probe ({outcome.reason}); "
                                 "expected an environment that installs, imports and probes")
            if self.reference is None:
                self.reference = outcome.probe
        self.bad = self.outcome(bad).probe
        if self.same(self.bad):
            return BisectResult("no single version could be named: --good and --bad give "
                                "identical probes (nothing to bisect)", 1)
        current, remaining = dict(good), list(packages)
        while remaining:
            failures = []
            for package in remaining:
                moved = {**current, package: bad[package]}
                outcome = self.outcome(moved)
                if outcome.probe is None:
                    failures.append(f"{package}=={bad[package]}: {outcome.reason}")
                    continue
                if not self.same(outcome.probe):
                    return self.bisect(package, current, bad[package])
                current = moved
                remaining.remove(package)
                break
            else:
                return BisectResult(
                    f"no single version could be named: from {pins_text(current)} no "
                    f"package moves to its --bad version on its own ({'; '.join(failures)}); "
                    f"the change needs {', '.join(remaining)} to move together", 1)
        return BisectResult("no single version could be named: every one-package step was "
                            "identical, yet --bad differs (the probe does not repeat?)", 1)

    # ------------------------------------------------------------ one package

    def candidates(self, package: str, start: str, end: str) -> list[str]:
        """`start`, the released versions strictly between, and `end`, ordered from start
        to end (either may be the newer); pre-releases only with `pre` (or as an end)."""
        from packaging.version import InvalidVersion, Version

        low, high = sorted((Version(start), Version(end)))
        between: dict[Version, str] = {}
        for text in self.maker.versions(package):
            try:
                version = Version(text)
            except InvalidVersion:
                continue
            if low < version < high and (self.pre or not version.is_prerelease):
                between.setdefault(version, text)
        ordered = [between[version] for version in sorted(between)]
        if Version(start) > Version(end):
            ordered.reverse()
        return [start, *ordered, end]

    def bisect(self, package: str, held: dict[str, str], end: str) -> BisectResult:
        """Binary search over `package`'s versions from held[package] (identical) to `end`
        (differs), the other packages as in `held`; skipped versions are stepped around."""
        versions = self.candidates(package, held[package], end)
        self.say(f"bisect: {package}: {len(versions) - 2} release(s) between "
                 f"{versions[0]} and {end}")
        low, high, skipped = 0, len(versions) - 1, {}
        while True:
            untested = [i for i in range(low + 1, high) if i not in skipped]
            if not untested:
                break
            middle = (low + high) / 2
            index = min(untested, key=lambda i: (abs(i - middle), i))
            outcome = self.outcome({**held, package: versions[index]})
            if outcome.probe is None:
                skipped[index] = outcome.reason
            elif self.same(outcome.probe):
                low = index
            else:
                high = index
        return self._ended(package, held, versions, low, high, skipped)

    def _ended(self, package: str, held: dict[str, str], versions: list[str], low: int,
               high: int, skipped: dict[int, str]) -> BisectResult:
        """The result line once nothing between `low` and `high` can be probed."""
        others = {name: version for name, version in held.items() if name != package}
        held_text = f"; held: {pins_text(others)}" if others else ""
        if high - low > 1:
            hidden = [f"{versions[i]} ({skipped[i]})" for i in range(low + 1, high)]
            return BisectResult(
                f"no single version could be named: {package}'s first change is one of "
                f"{', '.join(versions[low + 1:high + 1])} (last identical {versions[low]}, "
                f"first differing {versions[high]}; skipped: {'; '.join(hidden)}"
                f"{held_text})", 1, package, versions[low], None)
        last_good = self.outcome({**held, package: versions[low]}).probe
        first_bad = self.outcome({**held, package: versions[high]}).probe
        line = (f"{package} {versions[low]} -> {versions[high]}: "
                f"{_describe(diff_probes(last_good, first_bad))}{held_text}")
        if self.bad is not None and not diff_probes(first_bad, self.bad).identical:
            line += ("; --bad's probe differs from this one as well (later releases, or "
                     "the other packages, changed more)")
        return BisectResult(line, 0, package, versions[low], versions[high])


def bisect(good: dict[str, str], bad: dict[str, str], maker: EnvMaker,
           say: Callable[[str], None] | None = None, pre: bool = False) -> BisectResult:
    """Find the package release that first changes the probe between `good` and `bad`."""
    return Search(maker, say, pre).run(good, bad)
