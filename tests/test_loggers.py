"""Any of Lightning's loggers, one run folder; the HParams table ranks runs by their best."""

import csv
import importlib.util
import math
import shutil

import pytest
from tensorboard.plugins.hparams import metadata

from makemore_pl.lit.logger import RunLogger
from tests.conftest import (
    FIT_WORDS,
    PREFIX,
    QUIET,
    TINY_WORDS,
    events,
    exit_of,
    run_cli,
    run_folder,
)


@pytest.mark.slow
def test_csv_and_tensorboard_keep_one_run_folder_across_a_resume_and_a_test(tmp_path, caplog):
    (tmp_path / "words.txt").write_text("\n".join(TINY_WORDS * 3) + "\n", encoding="utf-8")
    both = ["--trainer.logger", "[CSVLogger, TensorBoardLogger]"]
    run_cli(
        "fit", "--data.path", "words.txt", "--trainer.max_epochs", "2", *both, *QUIET, cwd=tmp_path
    )
    run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "4", *QUIET, cwd=tmp_path)
    run_cli("test", "--ckpt_path", "best", *QUIET, cwd=tmp_path)
    run = run_folder(tmp_path)
    assert [p.name for p in (tmp_path / "lightning_logs").iterdir() if p.is_dir()] == [run.name]
    assert "- CSVLogger" in (run / "config.yaml").read_text()  # as given: the resume kept them
    with open(run / "metrics.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    val = [float(row["val_nll"]) for row in rows if row["val_nll"]]
    logged = [e.value for e in events(run).Scalars("curves/val_nll")]  # float32
    assert val == pytest.approx(logged, rel=1e-6) and len(val) == 4
    # hp_metric: the best val_nll so far, carried over the resume
    best = [float(row["hp_metric"]) for row in rows if row["hp_metric"]]
    assert best == pytest.approx([min(val[: i + 1]) for i in range(4)])
    (test,) = [row for row in rows if row["test_nll"]]  # at the checkpoint's step
    assert int(test["step"]) == int(events(run).Scalars("held_out/test_nll")[0].step)
    assert f"metrics: {run / 'metrics.csv'}" in caplog.text
    assert f"tensorboard --logdir {run.parent}" in caplog.text


@pytest.mark.parametrize(
    "logger, package",
    [("WandbLogger", "wandb"), ("lightning.pytorch.loggers.MLFlowLogger", "mlflow")],
)
def test_a_logger_whose_package_is_missing_is_one_line_before_any_folder(cwd, logger, package):
    if importlib.util.find_spec(package) is not None:
        pytest.skip(f"{package} is installed")
    message = exit_of(*FIT_WORDS, "--trainer.logger", logger)
    name = logger.rsplit(".", 1)[-1]
    assert (
        message
        == f"{PREFIX}--trainer.logger {name} needs the {package!r} package: pip install {package}"
    )
    assert not (cwd / "lightning_logs").exists()


def test_a_logger_that_is_not_lightnings_is_refused_by_name(cwd):
    message = exit_of(*FIT_WORDS, "--trainer.logger", "NoSuchLogger")
    assert message.startswith(f"{PREFIX}--trainer.logger: 'NoSuchLogger' is not one of Lightning")
    assert not (cwd / "lightning_logs").exists()


def logged_settings(run, model: str, params: dict) -> dict:
    """The HParams columns RunLogger writes of a run with these hyperparameters."""
    logger = RunLogger(run, model=model)
    logger.log_hyperparams(params)
    logger.save()  # as Lightning does next
    content = events(run).PluginTagToContent(metadata.PLUGIN_NAME)
    assert metadata.EXPERIMENT_TAG not in content  # else the first run's columns hide the rest
    start = metadata.parse_session_start_info_plugin_data(content[metadata.SESSION_START_INFO_TAG])
    return {k: v.number_value or v.string_value for k, v in start.hparams.items()}


def test_each_model_logs_its_own_settings_as_numbers(tmp_path):
    dense = {"vocab_size": 27, "context_size": 2, "encoding": "index", "l2": 0.01}
    dense |= {"optimizer": "adam", "lr": None, "chars": list("abcdefghijklmnopqrstuvwxyz")}
    dense["batch_size"] = None  # the data's
    columns = logged_settings(tmp_path / "logs" / "version_0", "BigramLitModule", dense)
    assert columns["lr"] == 0.5 and columns["l2"] == 0.01  # the lr in use, a number
    assert columns["model"] == "BigramLitModule" and "chars.0" not in columns
    assert "batch_size" not in columns  # the data's settings are in config.yaml
    suffix = {"vocab_size": 27, "context_size": 2, "strengths": [1.0, 0.5, 0.25], "l1": None}
    columns = logged_settings(tmp_path / "logs" / "version_1", "SuffixLitModule", suffix)
    assert [columns[f"strengths.{i}"] for i in range(3)] == [1.0, 0.5, 0.25]
    assert columns["l1"] == "none" and math.isclose(columns["smoothing"], 1e-4)


def test_a_resume_logs_no_placeholder_hp_metric(tiny_run, tmp_path):
    shutil.copytree(tiny_run, tmp_path, dirs_exist_ok=True)  # 2 epochs
    run_cli("fit", "--ckpt_path", "last", "--trainer.max_epochs", "4", *QUIET, cwd=tmp_path)
    points = events(run_folder(tmp_path)).Scalars("hp_metric")
    # a -1 at step 0 written by the resume would hide every point before it
    assert [p.step for p in points] == [0, 1, 2, 3] and all(p.value > 0 for p in points)
    assert [p.value for p in points] == sorted((p.value for p in points), reverse=True)
