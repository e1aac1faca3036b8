import hashlib
import http.server
import threading
from functools import partial
from pathlib import Path

import pytest

from makemore_pl import DataError, NamesDataModule, download_names
from makemore_pl.core import words as words_module

CONTENT = b"emma\nolivia\nava\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving one folder; yields its base URL."""
    served = tmp_path / "served"
    served.mkdir()
    (served / "names.txt").write_bytes(CONTENT)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_writes_the_file(server, tmp_path):
    (tmp_path / "data").mkdir()
    target = tmp_path / "data" / "names.txt"
    download_names(target, f"{server}/names.txt", SHA)
    assert target.read_bytes() == CONTENT
    assert leftovers(target.parent) == ["names.txt"]


def test_download_never_creates_a_folder(server, tmp_path):
    # a checkpoint made elsewhere may name /home/someone/data/names.txt
    target = tmp_path / "elsewhere" / "data" / "names.txt"
    with pytest.raises(DataError, match="nor its folder") as err:
        download_names(target, f"{server}/names.txt", SHA)
    assert str(target) in str(err.value)
    assert leftovers(tmp_path) == ["served"]
    data = NamesDataModule(str(target))
    with pytest.raises(DataError, match="nor its folder"):
        _ = data.data.vocab_size
    assert leftovers(tmp_path) == ["served"]


def test_checksum_mismatch_leaves_nothing_behind(server, tmp_path):
    (tmp_path / "out").mkdir()
    target = tmp_path / "out" / "names.txt"
    with pytest.raises(DataError, match="could not be downloaded") as err:
        download_names(target, f"{server}/names.txt", "0" * 64)
    assert str(target) in str(err.value)  # says where to put the file
    assert leftovers(target.parent) == []


def test_missing_remote_file_is_a_clear_error(server, tmp_path):
    target = tmp_path / "names.txt"
    with pytest.raises(DataError, match="404"):
        download_names(target, f"{server}/nope.txt", SHA)
    assert not target.exists()


def test_datamodule_downloads_a_missing_names_txt(server, tmp_path, monkeypatch):
    monkeypatch.setattr(words_module, "NAMES_URL", f"{server}/names.txt")
    monkeypatch.setattr(words_module, "NAMES_SHA256", SHA)
    dm = NamesDataModule(str(tmp_path / "names.txt"))
    assert dm.data.vocab_size == len(set("emmaoliviaava")) + 1  # read on first use, downloaded
    assert (tmp_path / "names.txt").read_bytes() == CONTENT


def test_datamodule_does_not_download_other_files(server, tmp_path, monkeypatch):
    monkeypatch.setattr(words_module, "NAMES_URL", f"{server}/names.txt")
    monkeypatch.setattr(words_module, "NAMES_SHA256", SHA)
    dm = NamesDataModule(str(tmp_path / "mine.txt"))
    with pytest.raises(DataError, match="does not exist"):
        _ = dm.data.vocab_size
    assert leftovers(tmp_path) == ["served"]
