"""Semantic version ranges for the ``version`` search filter, e.g. ``>=1.2,<2``.

A range is comparators joined by commas, all of which must hold:

* ``>=1.2``, ``>1.2.3``, ``<2``, ``<=2.1``, ``=1.2.3`` (or ``==``), ``!=1.2.3``: missing minor
  and patch numbers are zeros;
* ``^1.2`` (same major: ``>=1.2.0,<2.0.0``; ``^0.3`` stays below ``0.4.0``), ``~1.2`` (same
  minor: ``>=1.2.0,<1.3.0``);
* a bare version: ``1.2.3`` is exactly that version; ``1.2``, ``1.2.x`` or ``1.2.*`` any patch
  of it; ``1``, ``1.x`` any minor; ``*`` any version.

Precedence is SemVer 2.0.0's (``semver`` does the comparing). As in npm and Cargo, a
prerelease such as ``2.0.0-rc.1`` matches only a range with a comparator on the same
``2.0.0`` that names a prerelease itself, so ``>=1.2,<2`` never offers a 2.0 release
candidate.

Besides the exact test, a range yields inclusive bounds on ``MAJOR.MINOR.PATCH`` that SQL uses
to narrow the rows (``agent_capabilities.version_core``); they are a superset of the matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from semver import Version

from dukenet.errors import InvalidInput

_OPERATORS = ("==", ">=", "<=", "!=", ">", "<", "=", "^", "~")
_PARTIAL = re.compile(
    r"^(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*])(?:\.(?P<patch>\d+|[xX*])"
    r"(?P<rest>[-+][0-9A-Za-z.+-]*)?)?)?$"
)
MAX_RANGE_LENGTH = 200

Core = tuple[int, int, int]


@dataclass(frozen=True)
class Comparator:
    """One primitive test: ``op`` in ``> >= < <= = !=`` against ``version``."""

    op: str
    version: Version

    def holds(self, candidate: Version) -> bool:
        """Whether ``candidate`` satisfies this comparator (by SemVer precedence)."""
        order = candidate.compare(self.version)
        return {
            ">": order > 0,
            ">=": order >= 0,
            "<": order < 0,
            "<=": order <= 0,
            "=": order == 0,
            "!=": order != 0,
        }[self.op]


@dataclass(frozen=True)
class VersionRange:
    """A parsed range: every comparator must hold. ``text`` is the normalized form."""

    comparators: tuple[Comparator, ...]

    @property
    def text(self) -> str:
        """Canonical text (for cache keys): primitive comparators joined by commas."""
        return ",".join(f"{c.op}{c.version}" for c in self.comparators) or "*"

    def matches(self, version: str | None) -> bool:
        """Whether ``version`` (a SemVer string) is in the range; unparsable never is."""
        if version is None:
            return False
        try:
            candidate = Version.parse(version)
        except ValueError:
            return False
        if candidate.prerelease and not any(
            c.version.prerelease and c.version.to_tuple()[:3] == candidate.to_tuple()[:3]
            for c in self.comparators
        ):
            return False
        return all(c.holds(candidate) for c in self.comparators)

    def core_bounds(self) -> tuple[Core | None, Core | None]:
        """Inclusive (lowest, highest) ``MAJOR.MINOR.PATCH`` a match can have (None: open)."""
        low: Core | None = None
        high: Core | None = None
        for comparator in self.comparators:
            core = _core(comparator.version)
            if comparator.op in (">", ">=", "="):
                low = core if low is None else max(low, core)
            if comparator.op in ("<", "<=", "="):
                high = core if high is None else min(high, core)
        return low, high


def _core(version: Version) -> Core:
    return (version.major, version.minor, version.patch)


def _wild(part: str | None) -> bool:
    return part is None or part in ("x", "X", "*")


def _expand(op: str, text: str) -> list[Comparator]:
    match = _PARTIAL.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a version")
    major, minor, patch, rest = (match[k] for k in ("major", "minor", "patch", "rest"))
    if rest and (_wild(major) or _wild(minor) or _wild(patch)):
        raise ValueError(f"{text!r}: a prerelease or build needs MAJOR.MINOR.PATCH")
    if _wild(major):
        if not (_wild(minor) and _wild(patch)):
            raise ValueError(f"{text!r}: a number after a wildcard")
        if op not in ("", "=", "=="):
            raise ValueError(f"{op}{text} compares with a wildcard")
        return []
    has_minor = not _wild(minor)
    exact = has_minor and not _wild(patch)
    if not has_minor and not _wild(patch):
        raise ValueError(f"{text!r}: a patch number after a wildcard")
    base = Version(int(major), int(minor) if has_minor else 0, int(patch) if exact else 0)
    if rest:
        base = Version.parse(f"{base}{rest}")
    # The first version past a partial one: 1.2 -> 1.3.0, 1 -> 2.0.0.
    if not has_minor:
        past = base.bump_major()
    elif not exact:
        past = base.bump_minor()
    else:
        past = base
    if op in ("", "=", "=="):
        if exact:
            return [Comparator("=", base)]
        return [Comparator(">=", base), Comparator("<", past)]
    if op == "!=":
        if not exact:
            raise ValueError(f"!={text} needs MAJOR.MINOR.PATCH")
        return [Comparator("!=", base)]
    if op == ">=":
        return [Comparator(">=", base)]
    if op == "<":
        return [Comparator("<", base)]
    if op == ">":
        return [Comparator(">=" if not exact else ">", past if not exact else base)]
    if op == "<=":
        return [Comparator("<" if not exact else "<=", past if not exact else base)]
    if op == "~":
        upper = base.bump_major() if not has_minor else Version(base.major, base.minor + 1, 0)
        return [Comparator(">=", base), Comparator("<", upper)]
    # Caret: the left-most non-zero number stays the same.
    if base.major > 0 or not has_minor:
        upper = base.bump_major()
    elif base.minor > 0 or not exact:
        upper = Version(0, base.minor + 1, 0)
    else:
        upper = Version(0, 0, base.patch + 1)
    return [Comparator(">=", base), Comparator("<", upper)]


def parse_range(text: str, field: str = "version") -> VersionRange:
    """Parse a range; 422 ``VALIDATION_FAILED`` naming ``field`` if it is not one."""
    if len(text) > MAX_RANGE_LENGTH:
        raise InvalidInput(f"version range longer than {MAX_RANGE_LENGTH} characters", field=field)
    comparators: list[Comparator] = []
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            raise InvalidInput(f"{text!r} has an empty comparator", field=field)
        op = next((o for o in _OPERATORS if part.startswith(o)), "")
        try:
            comparators.extend(_expand(op, part[len(op) :].strip()))
        except ValueError as exc:
            raise InvalidInput(
                f"not a semantic version range ({exc}); "
                "use comparators such as '>=1.2,<2', '^1.4', '~2.1' or '1.2.x'",
                field=field,
            ) from exc
    return VersionRange(tuple(comparators))
