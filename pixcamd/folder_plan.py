"""What a folder run takes: ``protect PHOTO|FOLDER... --outdir DIR``'s inputs walked with the
daemon's rules (its photo extensions and ignore patterns; symlinks that lead out of the folder
refused, symlinked folders not entered), each photo once, with its key in the record and its
copy's name under the outdir (a folder's tree mirrored as ``cp -r`` would, a photo named on its
own as ``DIR/NAME.jpg``). ``pixcamd.folders`` runs the plan.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from pixcamd.daemon.ledger_row import name_key
from pixcamd.daemon.publication import copy_names
from pixcamd.daemon.schema import DEFAULT_EXTENSIONS, DEFAULT_IGNORE
from pixcamd.daemon.watcher import HIDDEN, NOT_A_PHOTO, NOT_UTF8, Rules, shown, unreadable
from pixcamd.errors import PixcamdError
from pixcamd.output import check_folder

STATE_DIR = ".pixcamd"  # inside a folder run's outdir: its record and staging folder
PASSED_OVER = "a folder whose name an ignore pattern matches"
LEFT_ALONE = "not a photo, or an ignored name"


@dataclass(frozen=True)
class Source:
    path: Path  # the photo
    key: str  # its name in the ledger, e.g. "2019/May/IMG_1.HEIC"
    # where its name is, its folders resolved (a link inside a folder is a photo of its own):
    # one photo however it was given, and what a folder run's record keeps as its source
    place: Path
    copy: str = ""  # its copy's path under the outdir, e.g. "2019/May/IMG_1.jpg" (plan_sources)


@dataclass
class Plan:
    sources: list[Source] = field(default_factory=list)
    refused: list[tuple[Path, str]] = field(default_factory=list)  # found, not taken: why
    others: set[Path] = field(default_factory=set)  # files left alone: not photos, ignored names
    hidden: list[Path] = field(default_factory=list)  # photos left alone for their names, named
    passed_over: list[Path] = field(default_factory=list)  # folders an ignore pattern names
    repeated: int = 0  # photos given more than once (a folder twice, a photo and its folder)
    taken: set[Path] = field(default_factory=set, repr=False)  # the sources' resolved paths

    @property
    def left_alone(self) -> int:  # each once, however often its folder was given
        return len(self.others)


def plan_sources(
    inputs: Iterable[Path],
    outdir: Path | None = None,
    extensions: Iterable[str] = DEFAULT_EXTENSIONS,
    ignore: Iterable[str] = DEFAULT_IGNORE,
    keyed: bool = True,
) -> Plan:
    """Every photo under ``inputs`` with its key and its copy's name (``_name_copies``);
    refuses two photos with one key, and a copy that would overwrite one of the photos.
    ``keyed=False``: no record keeps them (``score``), so a name that is not UTF-8 is taken."""
    plan = Plan()
    excluded = [outdir] if outdir is not None else []
    if outdir is not None:
        check_folder(outdir)  # said now, not once the models are loaded
        _no_broken_link(outdir)
    for given in inputs:
        given = Path(given)
        if given.is_dir():
            root = given.resolve()  # once a folder, not once a photo
            if outdir is not None and outdir.resolve() == root:
                raise PixcamdError(f"{given}: is the output folder itself")
            if outdir is not None and root.is_relative_to(outdir.resolve()):
                # everything under the output folder is taken for copies and left alone
                raise PixcamdError(
                    f"{given}: is inside the output folder {outdir}, whose files are taken for "
                    "copies and never protected; choose an output folder outside it"
                )
            if keyed and shown(root.name) != root.name:  # every key would hold it
                plan.refused.append((given, "a folder whose " + NOT_UTF8.removeprefix("its ")))
                continue
            rules = Rules(given, ignore, extensions, excluded)
            for found, reason in _walk(rules):
                if reason == NOT_UTF8 and not keyed and _plain_file(found):
                    reason = ""  # no key to hold: a photo like any other
                if reason == HIDDEN:
                    plan.hidden.append(found)
                elif reason == PASSED_OVER:
                    # a folder run's record (`score out/` after `protect --outdir out`): never
                    # a folder of photos, so not offered as one to name on its own
                    if found.name != STATE_DIR:
                        plan.passed_over.append(found)
                elif reason == LEFT_ALONE:
                    plan.others.add(found)
                elif reason:
                    plan.refused.append((found, reason))
                else:  # walked from the resolved folder, no linked folder entered: resolved
                    key = f"{root.name}/{rules.relative(found)}"
                    _take(plan, Source(found, key, found), keyed)
        else:  # a photo named on its own (open_photo says what is wrong with anything else)
            try:  # where its name is, not where a link leads (a link is a photo of its own)
                where = given.parent.resolve() / given.name
            except (OSError, RuntimeError):  # a loop: open_photo says what is wrong with it
                where = given.absolute()
            _take(plan, Source(given, given.name, where), keyed)
    plan.refused = list(dict.fromkeys(plan.refused))  # a folder given twice: said once
    plan.hidden = list(dict.fromkeys(plan.hidden))
    plan.passed_over = list(dict.fromkeys(plan.passed_over))
    plan.sources = _name_copies(plan.sources, outdir)
    originals = {_resolved(s.path) for s in plan.sources}
    for source in plan.sources:
        if outdir is not None and _resolved(outdir / source.copy) in originals:
            raise PixcamdError(
                f"{outdir / source.copy}: would overwrite an original photo; choose another "
                "output folder"
            )
    return plan


def plan_notes(plan: Plan, verb: str = "protect", done: str = "protected") -> list[str]:
    """What the walk left alone, in words — each photo hidden by its name named, the rest
    counted, never unseen (``verb``: what naming one on its own does)."""
    notes = [
        f"{path}: left alone for its name (a folder's hidden files and sync tools' temp names "
        f"are passed over): rename it, or name it on its own, to {verb} it"
        for path in plan.hidden
    ]
    if plan.passed_over:  # `@eaDir` sits in every folder of a Synology share
        n = len(plan.passed_over)
        named = ", ".join(str(p) for p in plan.passed_over[:5])
        more = f" and {n - 5} more" if n > 5 else ""
        their = "its name" if n == 1 else "their names"
        notes.append(
            f"{_many(n, 'folder')} passed over for {their} (hidden, or sync tools' own): "
            f"{named}{more}; name {'it' if n == 1 else 'one'} on its own to {verb} what is in it"
        )
    if plan.left_alone == 1:
        notes.append("1 other file left alone (not a photo, or an ignored name)")
    elif plan.left_alone:
        notes.append(f"{plan.left_alone} other files left alone (not photos, or ignored names)")
    if plan.repeated:
        each = "it is" if plan.repeated == 1 else "each is"
        notes.append(f"{_many(plan.repeated, 'photo')} given more than once: {each} {done} once")
    return notes


def _many(count: int, noun: str) -> str:
    """``1 folder``, ``2 folders``: a count said as a person says it."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def count_photos(
    folder: Path, extensions: Iterable[str], ignore: Iterable[str], budget: float = 2.0
) -> tuple[int, bool]:
    """The photos the daemon's rules find under ``folder``: (how many, whether all were
    counted) — a library on a slow disk is counted for ``budget`` seconds, then said as "more
    than"."""
    deadline, photos = time.monotonic() + budget, 0
    for _, reason in _walk(Rules(folder, ignore, extensions)):
        photos += not reason
        if time.monotonic() > deadline:
            return photos, False
    return photos, True


def _no_broken_link(outdir: Path) -> None:
    if outdir.is_symlink() and not outdir.exists():
        raise PixcamdError(
            f"{outdir}: a symlink to nothing or a symlink loop (it leads to "
            f"{os.readlink(outdir)}); give a folder, or a symlink to one"
        )


def _plain_file(path: Path) -> bool:
    """A regular file, not a link: what the walk's checks that come after the name's would let
    through (a link out of the folder, a pipe named like a photo are still refused)."""
    return not path.is_symlink() and path.is_file()


def _resolved(path: Path) -> Path:
    """``path`` resolved, or as it is where it cannot be (a symlink loop: ``open_photo`` and
    the copy's write say what is wrong with it)."""
    try:
        return path.resolve()
    except (OSError, RuntimeError):
        return Path(os.path.abspath(path))


def _take(plan: Plan, source: Source, keyed: bool = True) -> None:
    """``source`` into the plan: once, however often it was given (by its ``place``: the same
    name reached twice, a folder twice or a photo and its folder, is one photo), and only
    under a key the record can hold."""
    if keyed and shown(source.key) != source.key:  # a folder's or photo's name, not UTF-8
        plan.refused.append((source.path, NOT_UTF8))
        return
    if source.place in plan.taken:
        plan.repeated += 1
    else:
        plan.taken.add(source.place)
        plan.sources.append(source)


def _name_copies(sources: list[Source], outdir: Path | None) -> list[Source]:
    """``sources`` with their copies' names. Two photos with the same key (``a/IMG_1.jpg`` and
    ``b/IMG_1.jpg`` named on their own) cannot be told apart in the record: refused. Two whose
    copies would share a name (``IMG_1.HEIC`` beside ``IMG_1.JPG``, as phones and exports
    leave them) are told apart as the daemon's outbox does (``copy_names``): a photo that is
    already a JPEG keeps the plain name, the other takes its full one (``IMG_1.HEIC.jpg``);
    among several that are not, the first by name. The same names on every run of the same
    folders; a copy published by an earlier run keeps its name (``FolderRun``)."""
    owners: dict[str, Source] = {}
    for source in sources:
        if source.key in owners:
            where = outdir / output_key(source.key) if outdir is not None else source.key
            raise PixcamdError(
                f"{owners[source.key].path} and {source.path} would both be written to "
                f"{where}; rename one of them, or protect them into different --outdir folders"
            )
        owners[source.key] = source
    names: dict[str, str] = {}  # key → copy name
    taken: set[str] = set()  # name_key of the names given: IMG_1.jpg and img_1.JPG are one
    keep_plain = sorted(owners, key=lambda k: (not _is_jpeg_name(k), k))
    for key in keep_plain:
        names[key] = next(n for n in copy_names(key) if name_key(n) not in taken)
        taken.add(name_key(names[key]))
    return [replace(s, copy=names[s.key]) for s in sources]


def _is_jpeg_name(key: str) -> bool:
    return PurePosixPath(key).suffix.lower() in (".jpg", ".jpeg")


def _walk(rules: Rules):
    """(path, "") per photo, (path, why) per refused file or folder that cannot be read,
    (path, PASSED_OVER) per folder an ignore pattern names, (path, LEFT_ALONE) per file left
    alone."""
    errors: list[OSError] = []  # os.walk says nothing of a folder it cannot list
    for folder, dirs, files in os.walk(rules.inbox, onerror=errors.append, followlinks=False):
        yield from _cannot_read(errors)
        here = Path(folder)
        kept = []
        for d in sorted(dirs):
            if rules.excluded_path(here / d):
                continue
            if rules.ignored_name(d):
                yield here / d, PASSED_OVER
                continue
            if (here / d).is_symlink():
                yield here / d, "a symlinked folder; not entered"
                continue
            kept.append(d)
        dirs[:] = kept
        for name in sorted(files):
            rel, reason = rules.accept(here / name)
            if rel is None or reason == NOT_A_PHOTO:  # ignored names come back without a path
                yield here / name, LEFT_ALONE
            elif reason == "symlink out of the inbox":
                yield here / name, "a symlink that leads out of the folder; not followed"
            elif reason:
                yield here / name, reason
            else:
                yield here / name, ""
    yield from _cannot_read(errors)


def _cannot_read(errors: list[OSError]):
    while errors:
        exc = errors.pop(0)
        yield Path(exc.filename), unreadable(exc)


def output_key(key: str) -> str:
    """The copy's path under the outdir: the photo's key with .jpg."""
    return str(PurePosixPath(key).with_suffix(".jpg"))
