"""The data pipeline: finding, downloading (from a local server only), verifying, caching."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import png_bytes, write_mini_archive
from maml_helpers import omniglot as og
from maml_helpers.errors import DataError

MINI_LAYOUT = {"background": (2, 6), "evaluation": (2, 6)}


def test_full_data_set_matches_the_published_layout_and_fingerprint(omniglot):
    assert omniglot.images.shape == (1623, 20, 28, 28) and omniglot.images.dtype == np.uint8
    assert omniglot.fingerprint == og.FINGERPRINT
    for archive, (alphabets, characters) in og.LAYOUT.items():
        mask = omniglot.archive == archive
        assert mask.sum() == characters
        assert len(np.unique(omniglot.alphabets[mask])) == alphabets
    # ink is bright on a dark background, and LANCZOS gives grey levels, not just 0/255
    assert omniglot.images.mean() < 40 and len(np.unique(omniglot.images[:10])) > 50


def test_warm_load_is_fast(omniglot, omniglot_dir):
    start = time.perf_counter()
    again = og.load_omniglot(omniglot_dir, download=False)
    assert time.perf_counter() - start < 2.0
    assert np.array_equal(again.images, omniglot.images)


def test_paper_split_is_1200_train_val_and_423_test(omniglot):
    split = omniglot.splits("paper", validation=100, seed=0)
    sizes = {k: len(v) for k, v in split.items()}
    assert sizes == {"train": 1100, "val": 100, "test": 423}
    every = np.concatenate(list(split.values()))
    assert len(np.unique(every)) == 1623
    assert np.array_equal(split["test"], omniglot.splits("paper", validation=0)["test"])
    # drawn regardless of alphabet: both halves of Lake et al.'s split appear in the test set
    assert set(omniglot.archive[split["test"]]) == {"background", "evaluation"}


def test_alphabet_split_is_disjoint_by_alphabet(omniglot):
    split = omniglot.splits("alphabet", validation=100)
    assert len(split["test"]) == 659 and set(omniglot.archive[split["test"]]) == {"evaluation"}
    train_alph = set(omniglot.alphabets[split["train"]])
    assert not train_alph & set(omniglot.alphabets[split["val"]])
    assert len(split["val"]) >= 100 and len(split["train"]) + len(split["val"]) == 964


def test_reading_checks_the_layout(mini_archives):
    with pytest.raises(DataError, match="found 2 alphabets and 6 characters, expected 30 and 964"):
        og.preprocess(mini_archives)


def test_changed_pixels_fail_the_fingerprint(mini_archives, monkeypatch):
    monkeypatch.setattr(og, "LAYOUT", MINI_LAYOUT)
    with pytest.raises(DataError, match="different pixels"):
        og.preprocess(mini_archives)  # a subset cannot have the full set's fingerprint
    assert len(og.preprocess(mini_archives, expected_fingerprint=None).images) == 12


def test_missing_drawing_is_named(omniglot_dir, mini_archives, tmp_path, monkeypatch):
    monkeypatch.setattr(og, "LAYOUT", MINI_LAYOUT)
    name = zipfile.ZipFile(mini_archives / "images_background.zip").namelist()[5]
    write_mini_archive(omniglot_dir / "images_background.zip", tmp_path / "images_background.zip", drop=name)
    with pytest.raises(DataError, match="has 19 drawings, expected 20"):
        og._read_archive(tmp_path / "images_background.zip", "background")


def test_corrupt_and_truncated_archives(mini_archives, tmp_path):
    data = (mini_archives / "images_background.zip").read_bytes()
    bad = tmp_path / "images_background.zip"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="not a readable zip archive"):
        og._read_archive(bad, "background")


def test_unsafe_member_names_are_refused(omniglot_dir, tmp_path):
    path = write_mini_archive(omniglot_dir / "images_background.zip", tmp_path / "images_background.zip",
                              extra={"../../evil.png": png_bytes()})
    with pytest.raises(DataError, match="unsafe member name"):
        og._read_archive(path, "background")


def test_wrong_image_size_is_named(omniglot_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(og, "LAYOUT", {"background": (3, 7)})
    path = write_mini_archive(omniglot_dir / "images_background.zip", tmp_path / "images_background.zip",
                              extra={f"images_background/Zzz/character01/9999_{d:02d}.png": png_bytes((64, 64))
                                     for d in range(1, 21)})
    with pytest.raises(DataError, match="is 64x64 pixels, expected 105x105"):
        og._read_archive(path, "background")


def test_lookup_order_and_messages(mini_archives, tmp_path, monkeypatch):
    monkeypatch.setenv("MAML_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("OMNIGLOT_DIR", str(mini_archives))
    assert og.find_archives(download=False) == mini_archives                # env var
    assert og.find_archives(mini_archives, download=False) == mini_archives  # explicit wins
    with pytest.raises(DataError, match="the folder you passed points to .*not a folder"):
        og.find_archives(tmp_path / "nope")
    monkeypatch.setenv("OMNIGLOT_DIR", str(tmp_path))
    with pytest.raises(DataError, match="OMNIGLOT_DIR points to .*lacks images_background.zip and images_evaluation.zip"):
        og.find_archives()
    monkeypatch.delenv("OMNIGLOT_DIR")
    with pytest.raises(DataError, match="Omniglot not found. Looked in: OMNIGLOT_DIR .* cache folder"):
        og.find_archives(download=False)


@pytest.fixture()
def local_server(mini_archives):
    """An HTTP server on 127.0.0.1 serving the mini archives; never the real network."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(mini_archives))
    handler.log_message = lambda *a, **k: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def md5_of(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_verifies_md5_and_lands_in_the_cache(local_server, mini_archives, tmp_path, monkeypatch):
    md5 = {name: md5_of(mini_archives / name) for name in og.ARCHIVES.values()}
    og.download_archives(tmp_path, base_url=local_server, md5=md5)
    for name in og.ARCHIVES.values():
        assert (tmp_path / name).read_bytes() == (mini_archives / name).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(og.ARCHIVES.values())
    # the cache folder is where find_archives downloads to when nothing else is found
    monkeypatch.delenv("OMNIGLOT_DIR", raising=False)
    monkeypatch.setenv("MAML_CACHE_DIR", str(tmp_path.parent / "cache2"))
    monkeypatch.setattr(og, "OFFICIAL_URL", local_server)
    monkeypatch.setattr(og, "download_archives",
                        functools.partial(og.download_archives, base_url=local_server, md5=md5))
    assert og.find_archives() == tmp_path.parent / "cache2" / "omniglot"


def test_download_with_wrong_md5_keeps_nothing(local_server, tmp_path):
    # The official MD5s: the mini archives (like ../shared's re-zipped copy) do not match them.
    with pytest.raises(DataError, match="is corrupt: its MD5 is"):
        og.download_archives(tmp_path, base_url=local_server)
    assert list(tmp_path.iterdir()) == []


def test_download_failure_is_explained(tmp_path):
    with pytest.raises(DataError, match="Could not download .*set OMNIGLOT_DIR"):
        og.download_archives(tmp_path, base_url="http://127.0.0.1:9/", timeout=5)
    assert list(tmp_path.iterdir()) == []
