"""The content-addressed cache: hits, misses, corruption, eviction, processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import IO, Any

import pytest

from elliptio._cache import IN_USE_SECONDS, Cache
from elliptio._errors import IntegrityError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _writer(data: bytes, calls: list[int] | None = None):  # type: ignore[no-untyped-def]
    def write(f: IO[bytes]) -> None:
        if calls is not None:
            calls.append(1)
        f.write(data[: len(data) // 2])
        f.write(data[len(data) // 2 :])

    return write


def test_miss_then_hit_without_fetching(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    data = b"hello cache"
    calls: list[int] = []
    assert cache.lookup(_sha(data)) is None
    path = cache.fetch(_sha(data), _writer(data, calls))
    assert path.read_bytes() == data
    assert cache.fetch(_sha(data), _writer(data, calls)) == path
    assert calls == [1]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert cache.size() == len(data)


def test_file_mode_setting(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c", file_mode=0o640)
    path = cache.fetch(_sha(b"x"), _writer(b"x"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_wrong_bytes_are_never_cached(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    with pytest.raises(IntegrityError, match=r"s3://b/x\.csv"):
        cache.fetch(_sha(b"expected"), _writer(b"tampered"), "s3://b/x.csv")
    assert cache.lookup(_sha(b"expected")) is None
    assert list((tmp_path / "c" / "tmp").iterdir()) == []


def test_corrupted_entry_is_detected_and_fetched_again(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    data = b"precious bytes"
    path = cache.fetch(_sha(data), _writer(data))
    os.chmod(path, 0o600)
    path.write_bytes(b"bit rot!!!!!!!")
    assert cache.lookup(_sha(data)) is None
    calls: list[int] = []
    again = cache.fetch(_sha(data), _writer(data, calls))
    assert again.read_bytes() == data
    assert calls == [1]


def test_touched_but_intact_entry_stays_valid(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    path = cache.fetch(_sha(b"same"), _writer(b"same"))
    os.utime(path, (1, 1))  # mtime changed, bytes not: re-hashed once, kept
    assert cache.lookup(_sha(b"same")) == path


def test_lru_eviction_keeps_the_recently_used(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c", max_bytes=25)
    blobs = [bytes([65 + i]) * 10 for i in range(3)]
    paths = []
    for i, blob in enumerate(blobs[:2]):
        paths.append(cache.fetch(_sha(blob), _writer(blob)))
        os.utime(cache._meta(paths[-1]), (100 + i, 100 + i))
    assert cache.lookup(_sha(blobs[0])) is not None  # A is now the most recent
    cache.fetch(_sha(blobs[2]), _writer(blobs[2]))  # 30 bytes > 25: evict B
    assert cache.lookup(_sha(blobs[1])) is None
    assert cache.lookup(_sha(blobs[0])) is not None
    assert cache.lookup(_sha(blobs[2])) is not None
    assert cache.size() == 20


def test_every_use_counts_for_eviction(tmp_path: Path) -> None:
    """Last use was noted once a minute per process: read A, A, B, A, then C
    evicted A, the most recently used (helper-55)."""
    cache = Cache(tmp_path / "c", max_bytes=25)
    a, b, c = (bytes([65 + i]) * 10 for i in range(3))
    path_a = cache.fetch(_sha(a), _writer(a))
    path_b = cache.fetch(_sha(b), _writer(b))
    assert cache.lookup(_sha(a)) is not None
    os.utime(cache._meta(path_a), (100, 100))  # A used, then B
    os.utime(cache._meta(path_b), (200, 200))
    assert cache.lookup(_sha(a)) is not None  # A again, last
    cache.fetch(_sha(c), _writer(c))  # 30 bytes > 25: evict the least recent, B
    assert cache.lookup(_sha(b)) is None
    assert cache.lookup(_sha(a)) is not None


def test_an_entry_in_use_is_never_evicted(tmp_path: Path) -> None:
    """Past the limit, the entry just handed out evicted the one before it, used a
    moment ago: a path local_path() gave for the first of two files was gone when
    the second was read (helper-74). Recent entries stay, past the limit; they go
    once they are old."""
    cache = Cache(tmp_path / "c", max_bytes=15)
    a, b, c = (bytes([65 + i]) * 10 for i in range(3))
    path_a = cache.fetch(_sha(a), _writer(a))
    path_b = cache.fetch(_sha(b), _writer(b))
    assert path_a.exists()
    assert path_b.exists()
    assert cache.size() == 20  # over the limit, for the while they are in use
    old = time.time() - 2 * IN_USE_SECONDS
    os.utime(cache._meta(path_a), (old, old))
    os.utime(cache._meta(path_b), (old, old))
    cache.fetch(_sha(c), _writer(c))
    assert not path_a.exists()
    assert not path_b.exists()
    assert cache.size() == 10


def test_prune_and_clear(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    old = cache.fetch(_sha(b"old"), _writer(b"old"))
    cache.fetch(_sha(b"new"), _writer(b"new"))
    os.utime(cache._meta(old), (1000, 1000))
    assert cache.prune(older_than=time.time() - 3600) == 3
    assert cache.lookup(_sha(b"old")) is None
    assert cache.lookup(_sha(b"new")) is not None
    assert cache.clear() == 3
    assert cache.size() == 0


def test_bad_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        Cache(tmp_path).path_for("../../etc/passwd")


def _fetch_in_child(root: str, data: bytes, marker_dir: str) -> str:
    def write(f: IO[bytes]) -> None:
        Path(marker_dir, f"{os.getpid()}-{time.monotonic_ns()}").touch()
        time.sleep(0.2)  # hold the key long enough for the others to queue up
        f.write(data)

    return str(Cache(Path(root)).fetch(_sha(data), write))


def test_processes_share_one_cache(tmp_path: Path) -> None:
    data = os.urandom(100_000)
    markers = tmp_path / "markers"
    markers.mkdir()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        paths = pool.starmap(_fetch_in_child, [(str(tmp_path / "c"), data, str(markers))] * 4)
    assert len(set(paths)) == 1
    assert Path(paths[0]).read_bytes() == data
    assert len(list(markers.iterdir())) == 1  # one process fetched, three found it


def test_named_entry_keeps_the_file_name_and_is_the_same_bytes(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    data = b"a,b\n1,2\n"
    entry = cache.fetch(_sha(data), _writer(data))
    named = cache.named(entry, "data/table.csv")
    assert named.name == "table.csv"
    assert named.read_bytes() == data
    assert os.path.samefile(named, entry)  # a link, not a second copy
    assert cache.named(entry, "table.csv") == named
    assert cache.named(entry, "other.parquet").name == "other.parquet"
    assert cache.size() == len(data)  # counted once
    assert [e.sha256 for e in cache.entries()] == [_sha(data)]
    assert cache.named(entry, "") == entry
    assert cache.named(entry, "..") == entry


def test_a_change_through_the_named_path_is_caught_like_any_corruption(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    data = b"precious bytes"
    named = cache.named(cache.fetch(_sha(data), _writer(data)), "p.bin")
    named.write_bytes(b"overwritten in place")  # the same inode as the entry
    assert cache.lookup(_sha(data)) is None
    assert not named.exists()  # dropped with the entry
    again = cache.named(cache.fetch(_sha(data), _writer(data)), "p.bin")
    assert again.read_bytes() == data


def test_a_replaced_named_path_is_linked_again(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    entry = cache.fetch(_sha(b"right"), _writer(b"right"))
    named = cache.named(entry, "r.txt")
    named.unlink()
    named.write_bytes(b"wrong")  # a new file under the name, not the entry
    assert cache.lookup(_sha(b"right")) == entry  # the entry itself is intact
    assert cache.named(entry, "r.txt").read_bytes() == b"right"


def test_eviction_prune_and_clear_remove_the_names(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c", max_bytes=15)
    first = cache.named(cache.fetch(_sha(b"A" * 10), _writer(b"A" * 10)), "a.csv")
    os.utime(cache._meta(first.parent.parent / _sha(b"A" * 10)), (100, 100))
    second = cache.named(cache.fetch(_sha(b"B" * 10), _writer(b"B" * 10)), "b.csv")
    assert not first.exists()
    assert not first.parent.exists()
    assert second.exists()
    assert cache.clear() == 10
    assert not second.parent.exists()
    third = cache.named(cache.fetch(_sha(b"C"), _writer(b"C")), "c.csv")
    os.utime(cache._meta(third.parent.parent / _sha(b"C")), (1000, 1000))
    assert cache.prune(older_than=time.time() - 3600) == 1
    assert not third.parent.exists()


def test_naming_an_entry_evicted_meanwhile_leaves_no_dangling_link(tmp_path: Path) -> None:
    cache = Cache(tmp_path / "c")
    entry = cache.fetch(_sha(b"gone"), _writer(b"gone"))
    cache.clear()
    assert cache.named(entry, "g.txt") == entry
    assert not (entry.parent / f"{entry.name}.names" / "g.txt").is_symlink()


def test_a_change_that_restores_size_and_mtime_is_still_caught(tmp_path: Path) -> None:
    """Someone who can write the cache puts the old mtime back after a same-size
    write (``touch -d``): the ctime tells, so the entry is hashed, dropped and
    fetched again, in this process and in a new one."""
    cache = Cache(tmp_path / "c")
    data = b"precious bytes"
    path = cache.fetch(_sha(data), _writer(data))
    named = cache.named(path, "table.csv")
    assert cache.lookup(_sha(data)) == path  # linking it under a name keeps it valid
    before = os.stat(path)
    os.chmod(named, 0o600)
    named.write_bytes(b"bit rot!!!!!!!")
    os.chmod(path, stat.S_IMODE(before.st_mode))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_mtime_ns == before.st_mtime_ns
    assert os.stat(path).st_size == before.st_size
    assert cache.lookup(_sha(data)) is None
    calls: list[int] = []
    assert cache.fetch(_sha(data), _writer(data, calls)).read_bytes() == data
    assert calls == [1]
    fresh = Cache(tmp_path / "c")  # another process: no memory of earlier checks
    again = fresh.lookup(_sha(data))
    assert again is not None
    assert again.read_bytes() == data


def test_a_change_made_while_an_entry_is_named_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Naming an entry (a hard link) sets its ctime; taking that change for the
    link's own and keeping the entry verified served bytes another program
    changed meanwhile, size and mtime put back (helper-50). The next use hashes
    the entry instead."""
    import elliptio._cache as cache_module

    cache = Cache(tmp_path / "c")
    data = b"amount,100\n"
    path = cache.fetch(_sha(data), _writer(data))
    real_link = os.link

    def link_while_rewritten(src: Any, dst: Any) -> None:
        before = os.stat(path)
        os.chmod(path, 0o600)
        path.write_bytes(b"amount,999\n")  # same size, then the old mtime back
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        real_link(src, dst)

    monkeypatch.setattr(cache_module.os, "link", link_while_rewritten)
    cache.named(path, "t.csv")
    monkeypatch.setattr(cache_module.os, "link", real_link)
    assert cache.lookup(_sha(data)) is None
    assert Cache(tmp_path / "c").lookup(_sha(data)) is None


def test_an_entry_changed_while_it_is_hashed_is_not_stamped_as_verified(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stamp recorded after a re-hash is the one taken before it: a change
    made while the old bytes were being hashed is caught on the next use."""
    import elliptio._cache as cache_module

    cache = Cache(tmp_path / "c")
    data = b"original bytes"
    path = cache.fetch(_sha(data), _writer(data))
    os.utime(path, ns=(1, 1))  # looks changed: the next lookup hashes it
    real = cache_module.hash_file

    def hash_then_change(p: Path) -> tuple[int, str]:
        result = real(p)
        os.chmod(p, 0o600)
        p.write_bytes(b"changed bytes!")  # same size, after the bytes were read
        return result

    monkeypatch.setattr(cache_module, "hash_file", hash_then_change)
    assert cache.lookup(_sha(data)) is None
    monkeypatch.setattr(cache_module, "hash_file", real)
    assert cache.lookup(_sha(data)) is None  # hashed again: damaged, dropped
    assert not path.exists()


def test_a_download_adopted_under_its_name_is_not_hashed_again_on_its_next_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A download is verified as it streams; linking it under the file's name
    afterwards set its ctime, so the first read after every download hashed the
    whole entry again (helper-49). The name is linked before the stamp."""
    import elliptio._cache as cache_module

    cache = Cache(tmp_path / "c")
    data = os.urandom(4096)
    target = cache.path_for(_sha(data))
    target.parent.mkdir(parents=True)
    target.write_bytes(data)
    hashed: list[Path] = []
    real = cache_module.hash_file

    def counting(p: Path) -> tuple[int, str]:
        hashed.append(p)
        return real(p)

    monkeypatch.setattr(cache_module, "hash_file", counting)
    entry = cache.adopt(target, "data/t.csv")
    named = cache.named(entry, "t.csv")
    assert named.name == "t.csv"
    assert cache.lookup(_sha(data)) == entry
    assert Cache(tmp_path / "c").lookup(_sha(data)) == entry  # another process
    assert hashed == []
    assert named.read_bytes() == data
