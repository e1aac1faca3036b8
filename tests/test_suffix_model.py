import dataclasses

import lightning as L
import pytest
import torch
import yaml
from torch import Tensor

from makemore_pl import CountingBaseline, NamesDataModule, Vocabulary, build_ngrams
from makemore_pl.cli.main import main
from makemore_pl.cli.plain.suffix_sweep import suffix_sweep
from makemore_pl.core.batches import count_table
from makemore_pl.core.errors import CheckpointError, UserError
from makemore_pl.lit.suffix import SuffixLitModule
from makemore_pl.models.dense import DenseTable
from makemore_pl.models.ngram import mean_nll
from makemore_pl.models.optimum import fit_optimum
from makemore_pl.models.penalty_search import (
    Search,
    choose_penalty,
    moved,
    penalty_text,
    search_moves,
)
from makemore_pl.models.saved import read_checkpoint
from makemore_pl.models.suffix_fit import fit_suffix_model
from makemore_pl.models.suffix_model import SuffixConfig
from makemore_pl.models.suffix_tree import suffix_rows

WORDS = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn"]
MORE = WORDS + ["abigail", "emily", "ella", "elizabeth", "camila", "luna", "sofia", "avery"]


def trainer(**kwargs) -> L.Trainer:
    """CPU, float64, no logger, checkpoints, progress bar or summary."""
    options = dict(
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        precision="64-true",
        max_epochs=4,
    )
    return L.Trainer(**{**options, **kwargs})


@pytest.fixture
def data(tmp_path):
    """A data module over MORE, 3 characters of context, 20 % val and 20 % test."""
    path = tmp_path / "words.txt"
    path.write_text("\n".join(MORE) + "\n", encoding="utf-8")
    return NamesDataModule(str(path), context_size=3, val_fraction=0.2, test_fraction=0.2)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """(data, model, trainer): the Trainer's fit of MORE (default strengths), 3 steps of 100
    L-BFGS iterations."""
    path = tmp_path_factory.mktemp("suffix") / "words.txt"
    path.write_text("\n".join(MORE) + "\n", encoding="utf-8")
    data = NamesDataModule(str(path), context_size=3, val_fraction=0.2, test_fraction=0.2)
    model = SuffixLitModule(
        data.data.vocab_size, data.data.context_size, chars=data.data.chars, tolerance=1e-10
    )
    fit = trainer(max_epochs=3)
    fit.fit(model, data)
    return data, model, fit


def train_examples(words=WORDS, context_size=2):
    vocab = Vocabulary.from_words(words)
    return len(vocab), *build_ngrams(words, vocab, context_size)


def suffix_strings(words: list[str], c: int) -> set[str]:
    """Every suffix of every context, '.' for a boundary, minus those starting with '..'."""
    seen = set()
    for word in words:
        framed = "." * c + word
        for i in range(len(word) + 1):
            context = framed[i : i + c]
            seen |= {context[c - k :] for k in range(c + 1) if not context[c - k :][:2] == ".."}
    return seen


def test_one_row_per_suffix_seen_in_training_with_its_parent():
    v, x, y = train_examples(context_size=3)
    model = SuffixLitModule(v, 3)
    model.model.build_table(x, y)
    itos = Vocabulary.from_words(WORDS).itos
    rows = suffix_rows(model.model.keys, x, v)  # (N, 4)
    names = {}
    for context, row in zip(x.tolist(), rows.tolist(), strict=True):
        for k, r in enumerate(row):
            if r >= 0:
                names[r] = "".join(itos[i] for i in context[3 - k :])
    assert set(names.values()) == suffix_strings(WORDS, 3) and len(names) == len(model.model.keys)
    for r, name in names.items():
        parent = model.model.parents[r].item()
        assert (parent == -1) if name == "" else names[parent] == name[1:]
        assert model.model.lengths[r] == len(name)


def test_logits_are_the_sum_of_the_rows_of_every_suffix():
    v, x, y = train_examples(context_size=3)
    model = SuffixLitModule(v, 3).double()
    model.model.build_table(x, y)
    torch.nn.init.normal_(model.model.U, generator=torch.Generator().manual_seed(0))
    rows = suffix_rows(model.model.keys, x, v)
    by_sum = (model.model.W[rows.clamp_min(0)] * (rows >= 0)[..., None]).sum(1)
    assert torch.allclose(model(x), by_sum, atol=1e-12)
    unseen = torch.tensor([[v - 1, v - 1, v - 1]])  # no suffix but the empty one and maybe one
    assert torch.allclose(
        model(unseen), model.model.W[suffix_rows(model.model.keys, unseen, v)[0, :2]].sum(0)
    )


def test_full_context_only_is_the_dense_model_at_its_optimum():
    v, x, y = train_examples(context_size=2)
    table = count_table(x, y, v)
    l2 = 0.01  # BigramLitModule's l2 * mean(W**2) is strength / N * sum(W**2) with:
    strength = l2 * len(y) / (v**2 * v)
    model = SuffixLitModule(v, 2, strengths=[0.0, 0.0, strength], shortest=2).model.double()
    model.build_table(x, y)
    fit_suffix_model(model, table, max_iter=2000, tolerance=1e-9)
    dense = fit_optimum(v, 2, l2, table)
    contexts = table[0]
    assert torch.allclose(model.log_probs(contexts), dense.log_probs(contexts).double(), atol=1e-5)
    # and as the L2 term vanishes, the unsmoothed counting model
    model = SuffixLitModule(v, 2, strengths=[0.0, 0.0, 1e-7], shortest=2).model.double()
    model.build_table(x, y)
    fit_suffix_model(model, table, max_iter=2000, tolerance=1e-7)
    counting = CountingBaseline(v, 2, smoothing=0.0).fit(x, y)
    assert mean_nll(model, table) == pytest.approx(counting.nll(x, y), abs=1e-4)
    assert isinstance(dense, DenseTable)  # the plain model: no training stack


def gradients(model: SuffixLitModule, data: NamesDataModule) -> tuple[float, float]:
    """Largest gradient entry of the objective on the training split: in U, and in W."""
    x, y, counts = count_table(*data.data.examples("train")[:2], data.data.vocab_size)
    model.zero_grad()
    nll_sum, total = model.model.nll_sum(x, y, counts.double())
    (nll_sum / total + model.model.penalty(model.model.count_classes_of(x, y, counts))).backward()
    W = model.model.W.detach().clone().requires_grad_()  # the lecture's form: a sum of rows of W
    rows = suffix_rows(model.model.keys, x, data.data.vocab_size)
    logits = (W[rows.clamp_min(0)] * (rows >= 0)[..., None]).sum(1)
    nll = (torch.nn.functional.cross_entropy(logits, y, reduction="none") * counts).sum() / total
    known = rows >= 0  # every suffix of every context: (N, c + 1)
    pairs = (rows[known], y[:, None].expand_as(rows)[known])
    weights = counts[:, None].expand_as(rows)[known].to(W.dtype)
    seen = torch.zeros_like(W).index_put_(pairs, weights, accumulate=True)  # each pair's count

    def by_count(scales: list[float] | None) -> Tensor | float:
        return (
            1.0 if scales is None else torch.tensor(scales, dtype=W.dtype)[seen.clamp(max=3).long()]
        )

    strengths = torch.tensor(model.hparams.strengths, dtype=W.dtype)[model.model.lengths][:, None]
    penalty = (strengths * by_count(model.hparams.l2_by_count) * W.pow(2)).sum()
    if model.hparams.l1 is not None:  # the elastic net's smoothed L1 term
        l1 = torch.tensor(model.hparams.l1, dtype=W.dtype)[model.model.lengths][:, None]
        l1 = l1 * by_count(model.hparams.l1_by_count)
        eps = model.hparams.smoothing
        penalty = penalty + (l1 * ((W.pow(2) + eps**2).sqrt() - eps)).sum()
    (nll + penalty / model.model.train_total).backward()
    return model.model.U.grad.abs().max().item(), W.grad.abs().max().item()


def test_trainer_fits_to_the_optimum(run):
    data, model, _ = run
    in_u, in_w = gradients(model, data)  # from about 1e-2 at the start
    # the fit stops on the gradient in W (1e-10 here) or at round-off, whose floor depends on
    # the CPU: 2.1e-9 in W and 4.3e-9 in U measured
    assert in_u < 1e-8 and in_w < 1e-8


@pytest.mark.slow
def test_an_elastic_net_fits_to_its_optimum_and_saves_it_whole(data, tmp_path):
    # with count scales: the plain elastic net is theirs at 1 each (tests/test_suffix_fit.py)
    l1 = {"l1": [0.0, 0.2, 0.3, 0.3], "smoothing": 0.05, "l1_by_count": [1.5, 0.5, 1.0, 2.0]}
    l1["l2_by_count"] = [0.4, 1.3, 0.8, 1.0]
    model = SuffixLitModule(data.data.vocab_size, 3, chars=data.data.chars, tolerance=1e-10, **l1)
    fit = trainer(max_epochs=3)
    fit.fit(model, data)
    in_u, in_w = gradients(model, data)
    assert in_u < 1e-8 and in_w < 1e-8
    plain = SuffixLitModule(data.data.vocab_size, 3, chars=data.data.chars, tolerance=1e-10)
    trainer(max_epochs=3).fit(plain, data)  # L2 alone: another optimum
    assert (plain.model.U - model.model.U).abs().max() > 0.01
    fit.save_checkpoint(tmp_path / "elastic.ckpt")
    loaded = SuffixLitModule.load_from_checkpoint(tmp_path / "elastic.ckpt", weights_only=True)
    assert {name: loaded.hparams[name] for name in l1} == l1
    path = str(tmp_path / "elastic.ckpt")
    scorer = read_checkpoint(path).model  # the lightning-free form
    x = data.data.examples("test")[0]
    assert torch.equal(loaded.log_probs(x), model.log_probs(x))
    assert torch.equal(scorer.log_probs(x), model.log_probs(x)) and scorer.config.l1 == l1["l1"]


def test_logged_nlls_are_exact_weighted_means(run):
    data, model, fit = run
    for split in ("val", "test"):
        x, y, _ = data.data.examples(split)
        exact = torch.nn.functional.cross_entropy(model(x), y).item()
        logged = fit.validate(model, data, verbose=False) if split == "val" else None
        logged = logged or fit.test(model, data, verbose=False)
        assert logged[0][f"{split}_nll"] == pytest.approx(exact, abs=1e-12)
    scored = torch.cat(fit.predict(model, data))  # log p(next | context) of each test example
    x, y = build_ngrams(data.data.predict_words(), data.data.vocab, data.data.context_size)
    expected = torch.log_softmax(model(x).double(), 1).gather(1, y[:, None])[:, 0]
    assert torch.allclose(scored, expected, atol=1e-12)


def test_checkpoint_round_trip_and_resume(run, tmp_path):
    data, model, fit = run
    path = tmp_path / "suffix.ckpt"
    fit.save_checkpoint(path)
    loaded = SuffixLitModule.load_from_checkpoint(path, weights_only=True)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    x = data.data.examples("test")[0]
    assert torch.equal(loaded.log_probs(x), model.log_probs(x))
    assert loaded.vocab == data.data.vocab and loaded.hparams.strengths == [1.0, 0.25, 0.25, 0.25]
    resumed = SuffixLitModule(data.data.vocab_size, 3, chars=data.data.chars)
    # the same table, one more step: the optimum stays where it is
    trainer(max_epochs=4).fit(resumed, data, ckpt_path=path, weights_only=True)
    assert resumed.global_step == 4 and torch.equal(resumed.model.keys, model.model.keys)
    assert torch.allclose(resumed.model.U, model.model.U, atol=1e-7)


def test_checkpoint_problems_are_named_by_building_it(run, tmp_path):
    _, model, fit = run
    fit.save_checkpoint(tmp_path / "good.ckpt")
    saved = torch.load(tmp_path / "good.ckpt", weights_only=True)
    hparams, state = saved["hyper_parameters"], saved["state_dict"]

    def problem(hparams: dict, state: dict) -> str | None:
        torch.save({**saved, "hyper_parameters": hparams, "state_dict": state}, tmp_path / "x.ckpt")
        try:
            read_checkpoint(str(tmp_path / "x.ckpt"))
        except CheckpointError as err:
            return str(err)
        return None

    assert problem(hparams, state) is None
    built_by_the_cli = {**hparams, "_class_path": "makemore_pl.lit.suffix.SuffixLitModule"}
    assert problem(built_by_the_cli, state) is None
    legacy = {key.removeprefix("model."): t for key, t in state.items()}  # before composition
    assert problem(hparams, legacy) is None
    bad = {
        "keys": ({**state, "model.keys": state["model.keys"].flip(0)}, "sorted and distinct"),
        "tensors": ({k: t for k, t in state.items() if k != "model.scale"}, "no weights scale"),
        "U": ({**state, "model.U": state["model.U"][:-1]}, "its weights U, of shape"),
        "non-finite": ({**state, "model.U": state["model.U"] * float("nan")}, "NaN or infinite"),
    }
    for what, (broken, words) in bad.items():
        assert words in problem(hparams, broken), what
    huge = {**hparams, "context_size": 40, "strengths": [1.0] * 41}
    assert "context_size 40 overflows" in problem(huge, state)
    assert "its setting strengths needs 4 values" in problem({**hparams, "strengths": [1.0]}, state)
    bad_scales = {**hparams, "l2_by_count": [1.0, -1.0, 1.0, 1.0]}
    assert "l2_by_count must be finite and 0 or more" in problem(bad_scales, state)
    assert "unknown model settings: l2" in problem({**hparams, "l2": 0.1}, state)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"strengths": [1.0, 1.0]}, "strengths needs 4 values"),
        ({"strengths": [1.0, -1.0, 1.0, 1.0]}, "strengths must be finite and 0 or more"),
        ({"shortest": 4}, "shortest must be an integer in 0..3"),
        ({"l1": [1.0]}, "l1 needs 4 values"),
        ({"l1": [0.0, 0.1, -1.0, 0.0]}, "l1 must be finite and 0 or more"),
        ({"l1_by_count": [1.0, 2.0, 3.0, 4.0]}, "l1_by_count scales the L1 strengths: set l1"),
        ({"l1": [0.0] * 4, "l1_by_count": [1.0, 2.0]}, "l1_by_count needs 4 values"),
        ({"l1": [0.0] * 4, "l1_by_count": [1.0, 2.0, 3.0, float("nan")]}, "must be finite"),
        ({"smoothing": 0.0}, "smoothing must be a positive number"),
        ({"l2_by_count": [1.0, 1.0, 1.0]}, "l2_by_count needs 4 values"),
        ({"l2_by_count": [1.0, -1.0, 1.0, 1.0]}, "l2_by_count must be finite and 0 or more"),
    ],
)
def test_bad_settings_are_one_line_user_errors(kwargs, words):
    with pytest.raises(UserError, match=words):
        SuffixLitModule(27, 3, **kwargs)


def test_sampling_is_deterministic_and_follows_the_model(run):
    data, model, _ = run
    assert model.sample(50, seed=3) == model.sample(50, seed=3)
    first = torch.tensor([w[0] for w in model.sample(4000, seed=0, max_length=1)])
    expected = model.log_probs(torch.zeros(1, 3, dtype=torch.long))[0].exp()
    expected = expected[1:] / expected[1:].sum()  # a word is never empty
    observed = torch.bincount(first, minlength=data.data.vocab_size)[1:].double() / len(first)
    assert (observed - expected).abs().max() < 0.03


def test_strengths_are_chosen_on_val_and_tested_once(data, capsys):
    train, val = data.data.examples("train"), data.data.examples("val")
    v = data.data.vocab_size
    start = SuffixConfig(v, 3, strengths=[1.0, 0.25, 0.25, 0.25])
    penalty, points, model = choose_penalty(train, val, start, Search(rounds=1, max_iter=50))
    best = min(points, key=lambda p: p.val_nll)
    assert best.penalty == penalty and len(penalty.strengths) == 4 and penalty.l1 is None
    assert mean_nll(model, count_table(*val[:2], v)) == pytest.approx(best.val_nll, abs=1e-12)
    one_at_a_time = choose_penalty(train, val, start, Search(rounds=1, max_iter=50, workers=1))
    assert [(p.penalty, p.val_nll) for p in one_at_a_time[1]] == [
        (p.penalty, p.val_nll) for p in points
    ]  # the same search, bit for bit, whatever the number of fits at a time
    assert len({str(p.penalty) for p in points}) == len(points) > 7  # no point fitted twice
    result = suffix_sweep(data.data, rounds=1, max_iter=50)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(points) + 2 and lines[-1].startswith("chosen strengths")
    assert result["strengths"] == list(penalty.strengths) and result["l1"] is None


def test_an_l1_start_adds_its_strengths_and_the_smoothing_to_the_search(data, capsys):
    start = SuffixConfig(27, 3, [1.0, 0.25, 0.25, 0.25], l1=[0.0, 0.0, 0.3, 0.3], smoothing=0.3)
    assert search_moves(start) == [
        ("strengths", 1),
        ("strengths", 2),
        ("l1", 2),
        ("strengths", 3),
        ("l1", 3),
        ("smoothing", None),
    ]
    assert moved(start, "l1", 2, 2.0) == dataclasses.replace(start, l1=[0, 0, 0.6, 0.3])
    by_count = dataclasses.replace(
        start, l1_by_count=[1.0, 0.0, 0.5, 2.0], l2_by_count=[0.5, 1, 0, 1]
    )
    assert search_moves(by_count)[-5:] == [  # the 3+ scales are the reference; 0 stays 0
        ("smoothing", None),
        ("l2_by_count", 0),
        ("l2_by_count", 1),
        ("l1_by_count", 0),
        ("l1_by_count", 2),
    ]
    assert moved(start, "smoothing", None, 0.5).smoothing == 0.15
    l1 = {"l1": [0, 0, 0.3, 0.3], "smoothing": 0.3}
    result = suffix_sweep(data.data, start=[1, 0.25, 0.25, 0.25], **l1, rounds=1, max_iter=50)
    lines = capsys.readouterr().out.splitlines()
    chosen = SuffixConfig(
        27, 3, result["strengths"], l1=result["l1"], smoothing=result["smoothing"]
    )
    assert lines[0].startswith("L2 strengths (suffix lengths 0..c), L1 strengths, smoothing")
    assert lines[1].startswith("[1, 0.25, 0.25, 0.25] [0, 0, 0.3, 0.3] 0.3 ")
    assert any(line.startswith(penalty_text(chosen) + " ") for line in lines[1:-1])
    assert lines[-1].startswith(f"chosen strengths {result['strengths']}, l1 {result['l1']}")
    assert result["l1"][:2] == [0.0, 0.0]  # zeros stay zero
    shown = min(float(line.split()[-2]) for line in lines[1:-1])
    assert result["val_nll"] == pytest.approx(shown, abs=5e-6)


@pytest.mark.parametrize(
    "options, message",
    [
        (["--l1", "[1]"], "--l1 needs 4 values (suffix lengths 0..3), got [1.0]"),
        (["--l1", "[0, -1, 0, 0]"], "--l1 must be finite and 0 or more, got [0.0, -1.0, 0.0, 0.0]"),
        (["--l1", "[0, 0, 1, 1]", "--smoothing", "-1"], "--smoothing must be a positive number"),
        (["--start", "[1]"], "--start needs 4 values (suffix lengths 0..3), got [1.0]"),
        (["--rounds", "0"], "--rounds must be 1 or more, got 0"),
        (["--step", "1"], "--step must be a number above 1, got 1.0"),
        (["--l2_by_count", "[1, 1]"], "--l2_by_count needs 4 values (entries seen 0, 1, 2, 3+"),
        (["--tolerance", "-1"], "--tolerance must be finite and 0 or more, got -1.0"),
        (["--workers", "0"], "--workers must be 1 or more, got 0"),
        (["--data.val_fraction", "0"], "choosing the penalty needs val examples"),
    ],
)
def test_a_search_that_cannot_run_is_one_line_before_any_output(data, options, message, capsys):
    args = [
        "suffix_sweep",
        "--data.path",
        str(data.data.path),
        "--data.context_size",
        "3",
        *options,
    ]
    with pytest.raises(SystemExit) as exited:  # its message: printed with exit status 1
        main(args)
    assert capsys.readouterr().out == ""
    assert exited.value.code.startswith(f"makemore_pl: error: {message}")
    assert "\n" not in exited.value.code


@pytest.mark.slow
def test_a_fit_config_gives_the_search_its_penalty_as_the_start(data, tmp_path, capsys):
    config = tmp_path / "suffix.yaml"
    model = {"strengths": [1.0, 0.5, 0.5, 0.5], "l1": [0, 0, 0.3, 0.3], "smoothing": 0.2}
    model["l2_by_count"] = [0.5, 1, 1, 1]
    config.write_text(
        yaml.safe_dump(
            {
                "trainer": {"max_epochs": 8},
                "model": {
                    "class_path": "makemore_pl.lit.suffix.SuffixLitModule",
                    "init_args": {**model, "max_iter": 50},
                },
                "data": {"path": str(data.data.path), "context_size": 3},
            }
        )
    )
    main(
        [
            "suffix_sweep",
            "--config",
            str(config),
            "--smoothing",
            "0.1",
            "--rounds",
            "1",
            "--max_iter",
            "20",
        ]
    )
    lines = capsys.readouterr().out.splitlines()  # an option after the file has the last word
    assert lines[1].startswith("[1, 0.5, 0.5, 0.5] [0, 0, 0.3, 0.3] 0.1 [0.5, 1, 1, 1] ")
