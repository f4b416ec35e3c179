"""Omniglot: find it, download it, verify it, preprocess it to 28x28, split it.

Where the data comes from, in this order:
  1. an explicit directory (``root=`` / ``--data``),
  2. the ``OMNIGLOT_DIR`` environment variable,
  3. the default cache directory (``default_cache_dir() / "omniglot"``),
  4. else a download of the official archives into that cache, verified by their MD5.

Any copy is then verified by its *content*: 30 + 20 alphabets, 964 + 659 characters,
20 drawings each, 105x105 pixels, and a fingerprint over names and decoded pixels that
is the same for the official archives and for pixel-identical re-zipped copies (whose
archive MD5 differs). The zips are read directly (nothing is extracted, so no member
name can write outside a folder), resized to 28x28 with LANCZOS as the paper's code
did, and cached as one array file keyed by that fingerprint: a warm load is a hash of
the two archives plus one ``np.load``.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .files import atomic_write, remove_stale_parts, temp_file

ARCHIVES = {"background": "images_background.zip", "evaluation": "images_evaluation.zip"}
OFFICIAL_URL = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"
OFFICIAL_MD5 = {
    "images_background.zip": "68d2efa1b9178cc56df9314c21c6e718",
    "images_evaluation.zip": "6b91aef0f799c5bb55b94e3f2daec811",
}
# (alphabets, characters) per archive, as published by Lake et al. (2015).
LAYOUT = {"background": (30, 964), "evaluation": (20, 659)}
DRAWINGS = 20
PAPER_META_TRAIN = 1200  # characters for meta-training (and validation) in Finn et al.'s split
RAW_SIZE = 105
IMAGE_SIZE = 28
# sha256 over every drawing's name and decoded 105x105 pixels, in name order (see _read_archive).
FINGERPRINT = "30bc22c6ea8d3ca1c43e0babaed52606ca229657d29867b832552d695741a4c7"

_MEMBER = re.compile(r"^images_(background|evaluation)/([^/]+)/(character\d+)/(\d{4}_\d{2})\.png$")
_DOWNLOAD_HELP = (
    "Either set OMNIGLOT_DIR to a folder holding images_background.zip and "
    "images_evaluation.zip, pass the folder explicitly (--data DIR / root=DIR), or allow the "
    f"download of the official archives from {OFFICIAL_URL} (MIT licence)."
)


def default_cache_dir() -> Path:
    """$MAML_CACHE_DIR, else $XDG_CACHE_HOME/maml_helpers, else ~/.cache/maml_helpers."""
    if os.environ.get("MAML_CACHE_DIR"):
        return Path(os.environ["MAML_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "maml_helpers"


@dataclass
class Omniglot:
    """All 1623 characters, preprocessed.

    images:     uint8 (1623, 20, 28, 28), ink = 255, background = 0
    alphabets:  the alphabet of each character
    characters: its folder name within the alphabet ('character07')
    archive:    'background' or 'evaluation' (Lake et al.'s alphabet-disjoint halves)
    """

    images: np.ndarray
    alphabets: np.ndarray
    characters: np.ndarray
    archive: np.ndarray
    fingerprint: str

    def __len__(self) -> int:
        return len(self.images)

    def splits(self, scheme: str = "paper", validation: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
        """Character indices for 'train', 'val' and 'test'.

        'paper': as Finn et al. (2017): shuffle all 1623 characters with a fixed seed,
        regardless of alphabet; the first 1200 are for meta-training (of which the last
        ``validation`` are held out for model selection) and the other 423 for meta-test.
        'alphabet': Lake et al.'s split: test = the 20 evaluation alphabets; validation =
        whole background alphabets, drawn with the seed, until ``validation`` characters.
        """
        rng = np.random.default_rng(seed)
        if scheme == "paper":
            n = PAPER_META_TRAIN
            if not 0 <= validation < n:
                raise ValueError(f"validation must be between 0 and {n - 1} characters")
            order = rng.permutation(len(self))
            return {"train": np.sort(order[: n - validation]),
                    "val": np.sort(order[n - validation: n]),
                    "test": np.sort(order[n:])}
        if scheme == "alphabet":
            background = np.flatnonzero(self.archive == "background")
            names = np.unique(self.alphabets[background])
            held, val = set(), []
            for name in rng.permutation(names):
                if len(val) >= validation:
                    break
                held.add(name)
                val.extend(i for i in background if self.alphabets[i] == name)
            train = [i for i in background if self.alphabets[i] not in held]
            return {"train": np.array(train), "val": np.sort(np.array(val, dtype=int)),
                    "test": np.flatnonzero(self.archive == "evaluation")}
        raise ValueError(f"unknown split scheme {scheme!r}: use 'paper' or 'alphabet'")


# ---------------------------------------------------------------------------- finding

def find_archives(root: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding both archives, looked up in the documented order."""
    if root is not None:
        return _check_folder(Path(root), "the folder you passed")
    if os.environ.get("OMNIGLOT_DIR"):
        return _check_folder(Path(os.environ["OMNIGLOT_DIR"]), "OMNIGLOT_DIR")
    cache = default_cache_dir() / "omniglot"
    if all((cache / name).is_file() for name in ARCHIVES.values()):
        return cache
    if download:
        download_archives(cache)
        return cache
    raise DataError(
        "Omniglot not found. Looked in: OMNIGLOT_DIR (not set) and the cache folder "
        f"{cache} (no archives there); downloading was switched off. {_DOWNLOAD_HELP}")


def _check_folder(folder: Path, what: str) -> Path:
    folder = folder.expanduser()
    if not folder.is_dir():
        raise DataError(f"Omniglot not found: {what} points to {folder}, which is not a folder. "
                        + _DOWNLOAD_HELP)
    missing = [name for name in ARCHIVES.values() if not (folder / name).is_file()]
    if missing:
        raise DataError(f"Omniglot not found: {what} points to {folder}, which lacks "
                        f"{' and '.join(missing)}. " + _DOWNLOAD_HELP)
    return folder


# ---------------------------------------------------------------------------- download

def download_archives(dest: str | os.PathLike, base_url: str = OFFICIAL_URL,
                      md5: dict[str, str] = OFFICIAL_MD5, timeout: float = 60.0) -> None:
    """Download both archives into ``dest``, each verified by MD5 before it is moved in place.

    A failed or interrupted download leaves nothing behind but what was already complete.
    """
    from tqdm.auto import tqdm

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in ARCHIVES.values():
        if (dest / name).is_file():
            continue
        url = base_url.rstrip("/") + "/" + name
        digest = hashlib.md5()
        fd, tmp = temp_file(dest / name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
                total = int(response.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {name}") as bar:
                    while chunk := response.read(1 << 16):
                        out.write(chunk)
                        digest.update(chunk)
                        bar.update(len(chunk))
            if digest.hexdigest() != md5[name]:
                raise DataError(
                    f"The download of {url} is corrupt: its MD5 is {digest.hexdigest()}, expected "
                    f"{md5[name]}. Nothing was kept; try again, or fetch the file by hand and set "
                    "OMNIGLOT_DIR to its folder.")
            os.replace(tmp, dest / name)
        except (urllib.error.URLError, OSError) as err:
            raise DataError(f"Could not download {url} ({err}). Without internet access, copy "
                            f"{' and '.join(ARCHIVES.values())} into a folder and set OMNIGLOT_DIR "
                            "to it.") from None
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)


# ---------------------------------------------------------------------------- reading

def _read_archive(path: Path, archive: str):
    """Decode every drawing of one archive; return 28x28 images, names, and a pixel hash.

    Only well-formed member names are read: nothing is extracted, and a name that could
    escape a folder ('..', absolute paths) is rejected as a corrupt archive.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise DataError(f"{path} is not a readable zip archive ({err}). Delete it and download "
                        "it again (or point OMNIGLOT_DIR at a good copy).") from None
    members: dict[tuple[str, str], list[str]] = {}
    with zf:
        for name in zf.namelist():
            if name.startswith("/") or ".." in name.split("/") or "\\" in name:
                raise DataError(f"{path} contains an unsafe member name {name!r}; it is not an "
                                "Omniglot archive. Delete it and download it again.")
            match = _MEMBER.match(name)
            if match is None or match.group(1) != archive:
                continue  # folders, __MACOSX metadata and the like
            members.setdefault((match.group(2), match.group(3)), []).append(name)
        alphabets = {a for a, _ in members}
        expected_alphabets, expected_characters = LAYOUT[archive]
        if len(alphabets) != expected_alphabets or len(members) != expected_characters:
            raise DataError(
                f"{path} does not look like Omniglot's {ARCHIVES[archive]}: found {len(alphabets)} "
                f"alphabets and {len(members)} characters, expected {expected_alphabets} and "
                f"{expected_characters}. Replace it with a complete copy.")
        digest = hashlib.sha256()
        images = np.empty((len(members), DRAWINGS, IMAGE_SIZE, IMAGE_SIZE), np.uint8)
        keys = sorted(members)
        for c, key in enumerate(keys):
            names = sorted(members[key])
            if len(names) != DRAWINGS:
                raise DataError(f"{path}: character {'/'.join(key)} has {len(names)} drawings, "
                                f"expected {DRAWINGS}. Replace the archive with a complete copy.")
            for d, name in enumerate(names):
                try:
                    with Image.open(io.BytesIO(zf.read(name))) as img:
                        img.load()
                        raw = np.asarray(img.convert("1"), dtype=bool)
                        gray = img.convert("L")  # LANCZOS needs grey levels; on 1-bit images
                except Exception as err:  # Pillow would silently use NEAREST instead.
                    # Pillow names the buffer ('<_io.BytesIO object at 0x...>'): say what it is
                    reason = "not a readable image" if isinstance(err, UnidentifiedImageError) else err
                    raise DataError(f"{path}: cannot decode {name} ({reason}). The archive is "
                                    "corrupt: delete it and download it again.") from None
                if raw.shape != (RAW_SIZE, RAW_SIZE):
                    raise DataError(f"{path}: {name} is {raw.shape[1]}x{raw.shape[0]} pixels, "
                                    f"expected {RAW_SIZE}x{RAW_SIZE}. Replace the archive.")
                digest.update(name.encode() + b"\0" + np.packbits(raw).tobytes())
                small = gray.resize((IMAGE_SIZE, IMAGE_SIZE), resample=Image.LANCZOS)
                images[c, d] = 255 - np.asarray(small)  # ink bright, background 0
    return images, [a for a, _ in keys], [c for _, c in keys], digest.hexdigest()


def preprocess(folder: Path, expected_fingerprint: str | None = FINGERPRINT) -> Omniglot:
    """Read and verify both archives (about half a minute); no caching here."""
    parts = [_read_archive(folder / ARCHIVES[a], a) for a in ARCHIVES]
    fingerprint = hashlib.sha256("".join(p[3] for p in parts).encode()).hexdigest()
    if expected_fingerprint is not None and fingerprint != expected_fingerprint:
        raise DataError(
            f"The Omniglot archives in {folder} have the right layout but different pixels: "
            f"content fingerprint {fingerprint[:16]}..., expected {expected_fingerprint[:16]}... "
            "Some drawings are modified or corrupt; replace the archives with official copies.")
    return Omniglot(
        images=np.concatenate([p[0] for p in parts]),
        alphabets=np.array(sum((p[1] for p in parts), [])),
        characters=np.array(sum((p[2] for p in parts), [])),
        archive=np.array(sum(([a] * len(p[1]) for a, p in zip(ARCHIVES, parts)), [])),
        fingerprint=fingerprint)


# ---------------------------------------------------------------------------- caching

def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _notice(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def _read_cache(path: Path, fingerprint: str) -> Omniglot:
    """The cached arrays; any damage (truncation, a bad CRC, a wrong shape) raises."""
    with np.load(path) as z:  # reading a member checks its CRC
        data = Omniglot(z["images"], z["alphabets"], z["characters"], z["archive"], fingerprint)
    n = sum(characters for _, characters in LAYOUT.values())
    if (data.images.shape, data.images.dtype) != ((n, DRAWINGS, IMAGE_SIZE, IMAGE_SIZE), np.uint8):
        raise ValueError(f"images of shape {data.images.shape} and type {data.images.dtype}, expected "
                         f"{(n, DRAWINGS, IMAGE_SIZE, IMAGE_SIZE)} uint8")
    if {len(data.alphabets), len(data.characters), len(data.archive)} != {n}:
        raise ValueError(f"names for other than {n} characters")
    return data


def load_omniglot(root: str | os.PathLike | None = None, download: bool = True,
                  cache_dir: str | os.PathLike | None = None) -> Omniglot:
    """Find, verify and preprocess Omniglot, or load it from the cache (under 2 s).

    A damaged cache entry is rebuilt from the archives; a cache folder that cannot be
    written is reported, and the data set is then used from memory.
    """
    folder = find_archives(root, download)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    manifest_path = cache / "archives.json"
    remove_stale_parts(cache, [manifest_path.name, f"omniglot{IMAGE_SIZE}-{FINGERPRINT}.npz"])  # a killed write's
    key = "-".join(_file_sha256(folder / name) for name in ARCHIVES.values())
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    fingerprint = manifest.get(key)
    array_path = cache / f"omniglot{IMAGE_SIZE}-{fingerprint}.npz"
    if fingerprint is not None and array_path.is_file():
        try:
            if fingerprint != FINGERPRINT:  # these archives passed preprocess, which checks it
                raise ValueError(f"it records the fingerprint {str(fingerprint)[:16]}..., not Omniglot's")
            return _read_cache(array_path, fingerprint)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            _notice(f"the Omniglot cache {array_path} cannot be used ({err}); rebuilding it from the "
                    "archives (about half a minute).")
    data = preprocess(folder, FINGERPRINT)
    array_path = cache / f"omniglot{IMAGE_SIZE}-{data.fingerprint}.npz"
    try:
        atomic_write(array_path, lambda f: np.savez(
            f, images=data.images, alphabets=data.alphabets, characters=data.characters,
            archive=data.archive))
        manifest[key] = data.fingerprint
        atomic_write(manifest_path, lambda f: f.write(json.dumps(manifest, indent=1).encode()))
    except OSError as err:
        _notice(f"cannot write the Omniglot cache in {cache} ({err.strerror or err}); going on with the "
                "data in memory. Set MAML_CACHE_DIR to a writable folder to load in 2 s next time.")
    return data
