"""Which conflicts may merge themselves: the policy by path, and the merge decision.

Policies per path come from three places, weakest first (the last matching pattern
wins, as in ``.gitignore``):

1. the built-in defaults: ``merge`` for text types (:data:`TEXT_PATTERNS`), everything
   else ``keep-both``;
2. the device's own rules (``policies`` in ``.chunksync/config.json``);
3. the folder's policy file :data:`POLICY_FILE` (``.chunksyncpolicy`` at the top of the
   folder), which is synced like ``.chunksyncignore``, so every device decides alike.
   One rule a line: ``PATTERN POLICY`` (gitignore pattern, then ``merge``,
   ``keep-both``, ``last-write-wins`` or ``manual``); ``#`` starts a comment.

:func:`decide` is the pure decision for one conflicting file, tested as a table: try
a content merge (and in which format), or why not. The content merge itself is
:func:`chunksync.textmerge.merge_content`. The records :class:`MergeCandidate` and
:class:`MergeResolution` carry a conflict from the planner to the engine and the
engine's answer back; :class:`AutoMerge` is what the plan reports for a merge made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .conflict import POLICIES, ConflictPolicies, Policy
from .errors import ConfigError, UserError
from .fsops import atomic_write_bytes
from .objects import TreeEntry
from .textmerge import DEFAULT_LIMIT, Format

__all__ = [
    "POLICY_FILE",
    "TEXT_PATTERNS",
    "AutoMerge",
    "MergeCandidate",
    "MergeResolution",
    "decide",
    "effective_policies",
    "format_of",
    "parse_policy_file",
    "read_policy_file",
    "set_policy",
]

POLICY_FILE = ".chunksyncpolicy"
_TEXT_EXTENSIONS = (
    "txt md markdown rst org adoc tex bib csv tsv json yaml yml toml ini cfg conf "
    "xml html htm css scss js mjs ts tsx jsx py rb go rs c h cc cpp hpp java kt swift "
    "sh bash zsh fish sql lua pl php r el vim gitignore editorconfig"
)
TEXT_PATTERNS: tuple[str, ...] = (
    *(f"*.{ext}" for ext in _TEXT_EXTENSIONS.split()),
    ".chunksyncignore",
    POLICY_FILE,
    "Makefile",
    "Dockerfile",
)
_DEFAULT_RULES: tuple[tuple[str, Policy], ...] = tuple((p, "merge") for p in TEXT_PATTERNS)


def format_of(path: str) -> Format:
    """How a file's content is merged: JSON key by key, everything else as text."""
    return "json" if path.lower().endswith(".json") else "text"


@dataclass(frozen=True, slots=True)
class MergeCandidate:
    """A file both sides changed whose policy is ``merge``: for the engine to try."""

    path: str
    base: TreeEntry
    mine: TreeEntry
    theirs: TreeEntry


@dataclass(frozen=True, slots=True)
class MergeResolution:
    """The engine's answer for one candidate: the merged entry, or why not.

    It is used only for exactly the versions it was made for (``key``), so a re-plan
    after a concurrent change never applies a stale merge."""

    key: tuple[bytes | None, bytes | None, bytes | None]
    entry: TreeEntry | None = None
    how: str = ""
    reason: str = ""

    @staticmethod
    def key_of(
        base: TreeEntry, mine: TreeEntry, theirs: TreeEntry
    ) -> tuple[bytes | None, bytes | None, bytes | None]:
        return (base.id, mine.id, theirs.id)


@dataclass(frozen=True, slots=True)
class AutoMerge:
    """A merge the plan made: ``entry`` holds both sides' edits at ``path``."""

    path: str
    base: TreeEntry
    mine: TreeEntry
    theirs: TreeEntry
    entry: TreeEntry
    how: str


def decide(
    policy: Policy,
    base: TreeEntry | None,
    mine: TreeEntry | None,
    theirs: TreeEntry | None,
    path: str,
    limit: int = DEFAULT_LIMIT,
) -> Format | str:
    """Whether to try a content merge: the format to merge in, or the reason not to
    (a sentence, never a format name). Pure; the content checks come after."""
    if policy != "merge":
        return f"the policy for this path is {policy}"
    if base is None or mine is None or theirs is None:
        return "there is no common version to merge from"
    if not base.kind == mine.kind == theirs.kind == "file":
        return "only files are merged"
    if max(base.size, mine.size, theirs.size) > limit:
        return f"the file is over the {limit // 1024} KiB automatic-merge limit"
    return format_of(path)


# ------------------------------------------------------------------------ policy file


def parse_policy_file(
    text: str, where: str = POLICY_FILE, *, strict: bool = True
) -> tuple[tuple[str, Policy], ...]:
    """The rules of a policy file, in order. A bad line raises :class:`ConfigError`, or
    with ``strict=False`` is skipped: a sync never stops over a line another device
    wrote (``chunksync policy`` shows the error)."""
    rules: list[tuple[str, Policy]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pattern, _, policy = line.rpartition(" ")
        pattern = pattern.strip()
        if not pattern or policy not in POLICIES:
            if not strict:
                continue
            raise ConfigError(
                f"{where} line {number}: expected 'PATTERN POLICY' with POLICY one of "
                f"{', '.join(POLICIES)}, got {line!r:.80}"
            )
        rules.append((pattern, policy))  # type: ignore[arg-type]
    return tuple(rules)


def read_policy_file(root: Path, *, strict: bool = True) -> tuple[tuple[str, Policy], ...]:
    """The folder's synced rules (none when the file is missing or not a file)."""
    path = root / POLICY_FILE
    if path.is_symlink() or not path.is_file():
        return ()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        if not strict:
            return ()
        raise ConfigError(f"{path}: cannot read the policy file ({exc})") from exc
    return parse_policy_file(text, str(path), strict=strict)


def effective_policies(own: ConflictPolicies, root: Path | None) -> ConflictPolicies:
    """Defaults, then the device's rules, then the folder's synced policy file. The
    text-type defaults apply under the built-in default (keep-both) only: a device
    whose own default is another policy meant it for every path."""
    synced = read_policy_file(root, strict=False) if root is not None else ()
    defaults = _DEFAULT_RULES if own.default == "keep-both" else ()
    return ConflictPolicies(rules=(*defaults, *own.rules, *synced), default=own.default)


def set_policy(root: Path, pattern: str, policy: str | None) -> None:
    """Set (or, with ``policy=None``, remove) the rule for ``pattern`` in the folder's
    policy file, keeping its other lines and comments; written atomically."""
    pattern = pattern.strip()
    if not pattern or "\n" in pattern or pattern.startswith("#"):
        raise UserError(f"not a usable path pattern: {pattern!r}")
    if policy is not None and policy not in POLICIES:
        raise UserError(f"unknown policy {policy!r}: use one of {', '.join(POLICIES)}")
    path = root / POLICY_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    kept = [
        line
        for line in lines
        if line.strip().startswith("#") or line.strip().rpartition(" ")[0].strip() != pattern
    ]
    if policy is not None:
        kept.append(f"{pattern} {policy}")
    elif len(kept) == len(lines):
        raise UserError(f"no rule for {pattern!r} in {POLICY_FILE}")
    text = "\n".join(kept) + "\n" if kept else ""
    parse_policy_file(text)
    mode = os.stat(path).st_mode & 0o777 if path.exists() else 0o644
    atomic_write_bytes(path, text.encode(), mode=mode)
