from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def names_path() -> Path:
    """The real names.txt, copied to the project root by .ci/run (or by hand)."""
    path = ROOT / "names.txt"
    if not path.exists():
        pytest.fail(f"{path} is missing: copy the canonical names.txt there (as .ci/run does)")
    return path


@pytest.fixture
def tiny_file(tmp_path: Path):
    """Writes a small word list to a file and returns its path."""

    def write(words: list[str], name: str = "words.txt") -> Path:
        path = tmp_path / name
        path.write_text("\n".join(words) + "\n", encoding="utf-8")
        return path

    return write
