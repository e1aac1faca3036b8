"""The Python API as users write it: sizes from the data, names as strings; docs/python.md runs."""

import re

import lightning as L
import pytest

from makemore_pl import (
    BigramLitModule,
    CountingBaseline,
    DataError,
    NamesDataModule,
    SuffixLitModule,
)
from tests.conftest import ROOT, TINY_WORDS, quiet_trainer


@pytest.fixture
def names(tmp_path, monkeypatch):
    """A small names.txt in the current folder: no download."""
    (tmp_path / "names.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "names.txt"


@pytest.mark.parametrize("module", [BigramLitModule, SuffixLitModule])
def test_a_model_takes_its_sizes_and_characters_from_the_data(names, module):
    data = NamesDataModule(path="names.txt", context_size=2)
    model = module()
    quiet_trainer(max_epochs=2).fit(model, data)
    assert (model.config.vocab_size, model.config.context_size) == (15, 2)
    assert model.config.chars == data.data.chars and model.hparams["context_size"] == 2
    words = model.names(4, seed=3)
    assert len(words) == 4 and all(
        isinstance(w, str) and set(w) <= set(data.data.chars) for w in words
    )


def test_a_size_the_data_contradicts_is_one_line(names):
    data = NamesDataModule(path="names.txt", context_size=2)
    with pytest.raises(DataError) as refused:
        quiet_trainer(max_epochs=1).fit(BigramLitModule(context_size=1), data)
    assert str(refused.value) == (
        "BigramLitModule was given context_size 1 where the data has 2: leave it out to take the "
        "data's"
    )


def test_the_counting_model_gives_names_as_strings(names):
    data = NamesDataModule(path="names.txt", context_size=2).data
    counting = CountingBaseline(data.vocab_size, 2).fit_counts(data.ngram_counts("train"))
    first = counting.names(6, data.chars, seed=1)
    assert first[:3] == counting.names(3, data.chars, seed=1)  # seeded, as `sample` is
    assert all(name.startswith("em") for name in counting.names(3, data.chars, prefix="em"))


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.slow
# the page's full-batch Trainer keeps Lightning's log_every_n_steps=50, which Lightning points out
@pytest.mark.filterwarnings("ignore:The number of training batches")
def test_the_python_page_runs(names):
    page = (ROOT / "docs" / "python.md").read_text(encoding="utf-8")
    scope: dict = {"L": L}
    for block in python_blocks(page):  # in order, in one namespace, as in a notebook
        exec(compile(block, "docs/python.md", "exec"), scope)
    assert scope["loaded"].config.context_size == 2 and len(scope["suffix"].names(2)) == 2
