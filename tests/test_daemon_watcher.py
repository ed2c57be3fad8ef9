"""Ignore rules, the stability tracker and the watchdog handler, without a daemon."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from test_daemon_support import no_leaked_threads  # noqa: F401
from watchdog.events import (
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
)

from pixcamd.daemon.schema import DEFAULT_EXTENSIONS, DEFAULT_IGNORE
from pixcamd.daemon.watcher import (
    HIDDEN,
    LINKED_FOLDER,
    NOT_UTF8,
    InboxHandler,
    Rules,
    StabilityTracker,
    hidden_reason,
    scan,
)


def rules(inbox: Path, excluded=()) -> Rules:
    return Rules(inbox, DEFAULT_IGNORE, DEFAULT_EXTENSIONS, excluded)


@pytest.mark.parametrize(
    "name",
    [
        ".syncthing.IMG_1.jpg.tmp",  # Syncthing
        "~syncthing~IMG_1.jpg.tmp",  # Syncthing (Windows names)
        "IMG_1.jpg.~2f7a",  # Nextcloud partial download
        ".IMG_1.jpg.Xy12Ab",  # rsync temp file
        "IMG_1.jpg.part",
        "IMG_1.jpg.crdownload",
        ".stfolder/IMG_1.jpg",
        ".stversions/IMG_1~20240101.jpg",
        "@eaDir/IMG_1.jpg/SYNOPHOTO_THUMB_XL.jpg",
        ".DS_Store",
        "._IMG_1.jpg",
        "Thumbs.db",
        "trip/.hidden/IMG_1.jpg",
        "trip/notes.txt",
        "clip.mp4",
    ],
)
def test_sync_tool_temp_files_and_non_photos_are_ignored(tmp_path, name):
    _rel, reason = rules(tmp_path).accept(tmp_path / name)
    assert reason and reason != HIDDEN, f"{name} should be ignored"


def test_a_photo_hidden_by_its_name_is_named_not_dropped(tmp_path):
    r = rules(tmp_path)
    assert r.accept(tmp_path / ".IMG_1.jpg") == (".IMG_1.jpg", HIDDEN)
    assert r.accept(tmp_path / "trip" / ".IMG_2.HEIC") == ("trip/.IMG_2.HEIC", HIDDEN)
    assert "'.*' matches it" in hidden_reason(r, "trip/.IMG_2.HEIC")
    for rel in (".IMG_1.jpg", "trip/.hidden/IMG_3.jpg", "trip/IMG_4.jpg"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    refused: list = []
    assert list(scan(r, refused=refused)) == ["trip/IMG_4.jpg"]
    assert refused == [(".IMG_1.jpg", HIDDEN)]  # the hidden folder's photos stay unnamed


@pytest.mark.parametrize(
    "name",
    [
        "IMG_1.jpg",
        "trip/day 1/IMG_2.HEIC",
        "a~b.png",
        "x.JPEG",
        "IMG_3.avif",
        "scan.jfif",
        "DSCF0001.MPO",
        "IMG_0001.HIF",
    ],
)
def test_photos_are_accepted(tmp_path, name):
    assert rules(tmp_path).accept(tmp_path / name) == (name, "")


def test_outside_paths_and_own_folders_are_refused(tmp_path):
    inbox = tmp_path / "in"
    r = rules(inbox, excluded=[inbox / "weird-state"])
    assert r.accept(tmp_path / "elsewhere.jpg")[0] is None
    assert r.accept(inbox / "weird-state" / "x.jpg")[1] == "one of the daemon's own folders"


def test_symlinks_are_never_followed_out_of_the_inbox(tmp_path):
    inbox, outside = tmp_path / "in", tmp_path / "outside"
    (inbox / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"x")
    (inbox / "sub" / "real.jpg").write_bytes(b"x")
    (inbox / "escape.jpg").symlink_to(outside / "secret.jpg")
    (inbox / "inner.jpg").symlink_to(inbox / "sub" / "real.jpg")
    (inbox / "linked-folder").symlink_to(outside, target_is_directory=True)
    r = rules(inbox)
    assert r.accept(inbox / "escape.jpg") == ("escape.jpg", "symlink out of the inbox")
    assert r.accept(inbox / "inner.jpg") == ("inner.jpg", "")
    # scans never enter a symlinked folder and skip links that leave the inbox; each is named
    (inbox / "sub" / "again").symlink_to(inbox / "sub", target_is_directory=True)
    refused: list = []
    assert sorted(scan(r, refused=refused)) == ["inner.jpg", "sub/real.jpg"]
    assert sorted(refused) == [
        ("escape.jpg", "symlink out of the inbox"),
        ("linked-folder", LINKED_FOLDER),
        ("sub/again", LINKED_FOLDER),
    ]
    assert r.accept(inbox / "linked-folder") == ("linked-folder", LINKED_FOLDER)  # an event's
    refused = []
    assert list(scan(r, inbox / "linked-folder", refused=refused)) == []  # a folder "moved in"
    assert refused == [("linked-folder", LINKED_FOLDER)]


def test_a_pipe_or_a_symlink_loop_named_like_a_photo_is_refused_and_said(tmp_path):
    # Reading a named pipe blocks until someone writes to it: the intake would hang on it.
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "x.jpg").symlink_to(tmp_path / "y.jpg")
    (tmp_path / "y.jpg").symlink_to(tmp_path / "x.jpg")
    (tmp_path / "ok.jpg").write_bytes(b"x")
    r = rules(tmp_path)
    assert r.accept(tmp_path / "pipe.jpg") == ("pipe.jpg", "not a regular file")
    rel, why = r.accept(tmp_path / "x.jpg")
    assert rel == "x.jpg" and why.startswith("unusable symlink")
    refused: list = []
    assert list(scan(r, refused=refused)) == ["ok.jpg"]
    assert [rel for rel, _ in refused] == ["pipe.jpg", "x.jpg", "y.jpg"]  # named, not dropped


def test_a_name_that_is_not_utf8_or_a_dangling_symlink_is_refused_by_name(tmp_path):
    bad = os.fsdecode(b"caf\xe9.jpg")  # a Latin-1 name from an old archive or a FAT card
    (tmp_path / bad).write_bytes(b"x")
    (tmp_path / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "ok.jpg").write_bytes(b"x")
    r = rules(tmp_path)
    assert r.accept(tmp_path / bad) == ("caf\\xe9.jpg", NOT_UTF8)  # shown as text a log holds
    assert r.accept(tmp_path / "broken.jpg")[1] == "a symlink to nothing (its target is missing)"
    refused: list = []
    assert list(scan(r, refused=refused)) == ["ok.jpg"]
    assert sorted(rel for rel, _ in refused) == ["broken.jpg", "caf\\xe9.jpg"]
    # in one of the daemon's own folders it is passed over as everything there is
    own = rules(tmp_path, excluded=[tmp_path / "outbox"])
    assert own.accept(tmp_path / "outbox" / bad) == (None, "one of the daemon's own folders")


def test_scan_prunes_ignored_folders(tmp_path):
    for rel in ["a.jpg", ".stversions/old.jpg", "@eaDir/t.jpg", "trip/b.png", "trip/c.txt"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list(scan(rules(tmp_path))) == ["a.jpg", "trip/b.png"]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_tracker_waits_for_quiet_identical_twice_and_a_full_decode(tmp_path):
    clock, decoded = Clock(), []
    path = tmp_path / "a.jpg"
    path.write_bytes(b"part")

    def decode(p):
        decoded.append(p)
        if path.read_bytes() != b"complete":
            raise OSError("truncated")

    tracker = StabilityTracker(
        tmp_path, settle_time=2.0, settle_timeout=60, decode=decode, clock=clock
    )
    assert tracker.touch("a.jpg") is True
    assert tracker.touch("a.jpg") is False  # already tracked: timer restarted only
    for _ in range(5):  # polls within the quiet period never release it
        clock.now += 0.3
        assert tracker.poll() == ([], [])
    path.write_bytes(b"complete")  # the writer goes on: a new size restarts the quiet period
    os.utime(path, ns=(1, 1))
    clock.now += 1.0
    assert tracker.poll() == ([], [])
    clock.now += 1.5
    assert tracker.poll()[0] == []  # quiet long enough, but seen identical only once so far
    assert decoded == []
    clock.now += 0.5
    settled, vanished = tracker.poll()
    assert [(rel, error) for rel, _st, error in settled] == [("a.jpg", None)]
    assert decoded == [path] and len(tracker) == 0 and vanished == []


def test_tracker_holds_an_undecodable_file_until_the_timeout(tmp_path):
    clock = Clock()
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8garbage")

    def decode(p):
        raise OSError("cannot identify image file")

    tracker = StabilityTracker(
        tmp_path, settle_time=1, settle_timeout=10, decode=decode, clock=clock
    )
    tracker.touch("bad.jpg")
    doubts = []
    for _ in range(8):
        clock.now += 1
        assert tracker.poll()[0] == []
        doubts += tracker.doubts()
        assert tracker.restless() == []  # quiet for the whole wait: a doubt, not a change
    # said once, as soon as it is quiet and does not decode, not only at the timeout
    assert doubts == [("bad.jpg", "does not decode: cannot identify image file")]
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8more garbage")  # new bytes: judged anew
    for _ in range(2):  # a pause of two settle times: not named
        clock.now += 1
        tracker.poll()
        assert tracker.doubts() == []
    for _ in range(3):
        clock.now += 1
        tracker.poll()
        doubts += tracker.doubts()
    assert len(doubts) == 2
    clock.now += 10
    settled, _ = tracker.poll()
    assert [(rel, error) for rel, _st, error in settled] == [
        ("bad.jpg", "does not decode: cannot identify image file")
    ]


def test_tracker_names_a_file_that_keeps_changing_once_and_still_takes_it_when_it_stops(tmp_path):
    """A copy that never ends used to stay "settling" with no word: after settle_timeout it is
    named once, and it settles as usual as soon as it stays unchanged."""
    clock, path = Clock(), tmp_path / "growing.jpg"
    path.write_bytes(b"x")
    tracker = StabilityTracker(
        tmp_path, settle_time=1, settle_timeout=10, decode=lambda p: None, clock=clock
    )
    tracker.touch("growing.jpg")
    named = []
    for i in range(25):  # a byte every half second: never quiet
        clock.now += 0.5
        with path.open("ab") as f:
            f.write(b"x")
        os.utime(path, ns=(i + 2, i + 2))
        assert tracker.poll() == ([], [])
        named += [(rel, round(seconds)) for rel, seconds in tracker.restless()]
    assert named == [("growing.jpg", 10)]  # once, at the timeout, not again
    settled = []
    for _ in range(4):  # it stops: taken as any other
        clock.now += 0.5
        settled += tracker.poll()[0]
    assert [rel for rel, _st, _error in settled] == ["growing.jpg"]
    assert tracker.restless() == []


def test_tracker_settles_an_hdr_photo_at_once_it_is_read_whole(tmp_path):
    # an HDR HEIC decodes whole and is then refused: no bytes still to come, no timeout to wait
    pytest.importorskip("pillow_heif")
    from iccprofiles import save_nclx_heic
    from PIL import Image

    from pixcamd.photo import load_photo

    hdr = Image.new("RGB", (64, 48), (90, 120, 200))
    save_nclx_heic(hdr, tmp_path / "hdr.heic", primaries=9, transfer=16, quality=90)
    (tmp_path / "part.jpg").write_bytes(b"\xff\xd8\xff\xe0")  # a JPEG still arriving
    clock = Clock()
    tracker = StabilityTracker(
        tmp_path, settle_time=1, settle_timeout=60, decode=load_photo, clock=clock
    )
    tracker.touch("hdr.heic")
    tracker.touch("part.jpg")
    settled = []
    for _ in range(3):
        clock.now += 1
        settled += tracker.poll()[0]
    assert [rel for rel, _st, _error in settled] == ["hdr.heic"]
    assert settled[0][2].startswith("cannot be protected: an HDR photo (PQ (SMPTE 2084) transfer):")
    assert "part.jpg" in tracker  # an undecodable file still waits for the timeout


def test_tracker_settles_a_photo_over_max_pixels_once_quiet_not_as_corrupt(tmp_path):
    # its header gives the size: refused for what it is, once quiet for three settle times
    # (its end may still be arriving in pauses: one refusal, not one a pause), never as corrupt
    from PIL import Image

    from pixcamd.photo import load_photo

    Image.new("RGB", (640, 480), (90, 120, 200)).save(tmp_path / "big.jpg", quality=90)
    whole = (tmp_path / "big.jpg").read_bytes()
    (tmp_path / "half.jpg").write_bytes(whole[: len(whole) // 2])  # still arriving
    clock = Clock()
    tracker = StabilityTracker(
        tmp_path,
        settle_time=1,
        settle_timeout=60,
        decode=lambda path: load_photo(path, max_pixels=100_000),
        clock=clock,
    )
    tracker.touch("big.jpg")
    tracker.touch("half.jpg")
    settled = []
    for _ in range(3):  # quiet for two settle times: a pause in a copy, not its end
        clock.now += 1
        settled += tracker.poll()[0]
    assert settled == [] and tracker.doubts() == []
    with open(tmp_path / "half.jpg", "ab") as rest:  # the copy goes on
        rest.write(whole[len(whole) // 2 :])
    for _ in range(3):
        clock.now += 1
        settled += tracker.poll()[0]
    assert [rel for rel, _st, _error in settled] == ["big.jpg"]
    for _ in range(3):
        clock.now += 1
        settled += tracker.poll()[0]
    assert sorted(rel for rel, _st, _error in settled) == ["big.jpg", "half.jpg"]  # once each
    assert all(
        error == "cannot be protected: 640×480 px is over the limit of 100,000 pixels"
        for _rel, _st, error in settled
    )


def test_tracker_drops_vanished_files(tmp_path):
    tracker = StabilityTracker(tmp_path, 1, 10, decode=lambda p: None, clock=Clock())
    tracker.touch("gone.jpg")
    assert tracker.poll() == ([], ["gone.jpg"])
    assert "gone.jpg" not in tracker


def test_handler_sees_renames_into_the_inbox_and_whole_folders(tmp_path):
    inbox = tmp_path / "in"
    inbox.mkdir()
    seen, gone, folders = [], [], []
    handler = InboxHandler(
        rules(inbox), lambda rel, why: seen.append((rel, why)), gone.append, folders.append
    )
    # rsync / Syncthing: a temp name, then the final name only as a rename
    handler.dispatch(FileCreatedEvent(str(inbox / ".IMG_1.jpg.Ab12Cd")))
    handler.dispatch(FileClosedEvent(str(inbox / ".IMG_1.jpg.Ab12Cd")))
    handler.dispatch(FileMovedEvent(str(inbox / ".IMG_1.jpg.Ab12Cd"), str(inbox / "IMG_1.jpg")))
    # mv from outside the inbox arrives as a creation
    handler.dispatch(FileCreatedEvent(str(inbox / "moved.jpg")))
    # moved out of the inbox / deleted
    handler.dispatch(FileMovedEvent(str(inbox / "x.jpg"), str(tmp_path / "x.jpg")))
    handler.dispatch(FileDeletedEvent(str(inbox / "y.jpg")))
    handler.dispatch(DirMovedEvent(str(tmp_path / "trip"), str(inbox / "trip")))
    handler.dispatch(DirMovedEvent(str(tmp_path / "t"), str(inbox / ".stversions")))
    assert seen == [("IMG_1.jpg", ""), ("moved.jpg", "")]
    assert gone == [".IMG_1.jpg.Ab12Cd", "x.jpg", "y.jpg"]
    assert folders == [inbox / "trip"]


def test_a_poll_decodes_today_s_photos_first_within_its_budget_and_hears_a_stop(tmp_path):
    """A library found at the first start settles a batch a poll, queued as it goes — not
    after every photo in it was decoded — and a photo taken today, dropped in meanwhile, comes
    first; the library in the order it was found."""
    clock = Clock()
    decoded: list[str] = []

    def decode(path):  # each full decode takes a second of the (fake) clock
        decoded.append(path.name)
        clock.now += 1.0

    tracker = StabilityTracker(
        tmp_path, settle_time=1, settle_timeout=60, decode=decode, clock=clock
    )
    for n in range(6):  # a start-up scan of photos from 2015
        (tmp_path / f"old{n}.jpg").write_bytes(b"x")
        os.utime(tmp_path / f"old{n}.jpg", (1.43e9, 1.43e9))
        tracker.touch(f"old{n}.jpg")
    (tmp_path / "today.jpg").write_bytes(b"x")
    tracker.touch("today.jpg")  # dropped in while the library waits
    for _ in range(3):  # seen, then quiet and the same twice
        clock.now += 1.5
        tracker.poll(budget=2.0)
    assert decoded == ["today.jpg", "old0.jpg"]  # the budget spent: the rest wait
    assert len(tracker) == 5
    assert tracker.poll(budget=2.0, stop=lambda: True) == ([], [])  # stopping: not one more
    settled, _ = tracker.poll(budget=2.0)
    assert [rel for rel, _st, _why in settled] == ["old1.jpg", "old2.jpg"]
    while len(tracker):
        tracker.poll(budget=2.0)
    assert decoded == ["today.jpg", *(f"old{n}.jpg" for n in range(6))]
