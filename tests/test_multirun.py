"""Sweeps: Hydra-grammar expansion, the -m guard, one run folder per job, the summary, failing jobs, ranks."""

import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from hydra import initialize_config_module

from learnlib.configs.compose import CONFIG_MODULE, list_experiments
from learnlib.errors import ConfigError
from learnlib.train.__main__ import main
from learnlib.train.local_ddp import spawn_ranks
from learnlib.train.run_dir import lock_folder, unlock_folder
from learnlib.train.sweep import expand

TINY = ["experiment=mlp_digits", "trainer.max_steps=2", "trainer.batch_size=8", "trainer.eval_every=2",
        "trainer.checkpoint_every=2", "trainer.warmup_steps=1", "trainer.device=cpu", "trainer.progress=false",
        "trainer.tensorboard=false", "trainer.plot=false"]


def swept(overrides):
    return [job.swept for job in expand(overrides)]


def summary(folder: Path) -> list[dict]:
    return yaml.safe_load((folder / "multirun.yaml").read_text())["jobs"]


def test_sweeps_expand_to_the_cartesian_product_last_varying_fastest():
    jobs = expand(["experiment=mlp_digits", "trainer.lr=1e-3,3e-3", "trainer.max_steps=5", "seed=0,1"])
    assert [job.swept for job in jobs] == [("trainer.lr=0.001", "seed=0"), ("trainer.lr=0.001", "seed=1"),
                                           ("trainer.lr=0.003", "seed=0"), ("trainer.lr=0.003", "seed=1")]
    assert [job.index for job in jobs] == [0, 1, 2, 3]
    # the overrides that are not swept travel unchanged, in their place
    assert jobs[1].overrides == ("experiment=mlp_digits", "trainer.lr=0.001", "trainer.max_steps=5", "seed=1")
    assert jobs[1].dirname == "1_trainer.lr=0.001,seed=1"


def test_range_choice_and_quoted_values_follow_hydra_grammar():
    assert swept(["seed=range(0,3)"]) == [("seed=0",), ("seed=1",), ("seed=2",)]
    assert swept(["seed=choice(4,7)"]) == [("seed=4",), ("seed=7",)]
    assert swept(["+tag='a,b',c"]) == [("+tag='a,b'",), ("+tag=c",)]
    # a quoted comma is one value, not a sweep
    assert [job.overrides for job in expand(["+tag='a,b'"])] == [("+tag='a,b'",)]
    assert expand(["+tag='a/b',c"])[0].dirname == "0_+tag=_a_b_"


def test_glob_sweeps_the_experiment_group():
    with initialize_config_module(config_module=CONFIG_MODULE, version_base=None):
        jobs = expand(["experiment=glob(*_digits)"])
    names = [job.swept[0].split("=", 1)[1] for job in jobs]
    assert names == [n for n in list_experiments() if n.endswith("_digits")] and "mlp_digits" in names


def test_interval_and_unparsable_overrides_are_config_errors():
    with pytest.raises(ConfigError, match="intervals"):
        expand(["trainer.lr=interval(0.1,1.0)"])
    with pytest.raises(ConfigError, match="trainer.lr=\\["):
        expand(["trainer.lr=["])


def test_a_sweep_without_m_is_refused_in_one_line(capsys, tmp_path):
    assert main([*TINY, f"run_dir={tmp_path}", "trainer.lr=1e-3,3e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "trainer.lr=1e-3,3e-3" in err and "add -m" in err
    assert not any(tmp_path.iterdir())  # nothing ran
    assert main([*TINY, f"sweep_dir={tmp_path}"]) == 2
    assert "add -m" in capsys.readouterr().err


def test_the_sweep_folder_cannot_be_swept(capsys, tmp_path):
    assert main(["-m", *TINY, f"run_dir={tmp_path}/a,{tmp_path}/b"]) == 2
    assert "cannot be swept" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


def test_a_tiny_sweep_writes_one_run_per_job_and_a_summary(capsys, tmp_path):
    assert main(["-m", *TINY, "seed=0,1", f"sweep_dir={tmp_path}"]) == 0
    jobs = summary(tmp_path)
    assert [(j["index"], j["overrides"], j["status"], j["steps"]) for j in jobs] == [
        (0, ["seed=0"], "ok", 2), (1, ["seed=1"], "ok", 2)]
    for job, name in zip(jobs, ["0_seed=0", "1_seed=1"]):
        run = tmp_path / name
        assert job["run_dir"] == str(run)
        assert (run / "checkpoints/last.pt").is_file() and (run / "config.yaml").is_file()
        assert set(job["metrics"]) == {"val/accuracy", "val/loss"}
        assert yaml.safe_load((run / "config.yaml").read_text())["run_dir"] == str(run)
    assert jobs[0]["metrics"] != jobs[1]["metrics"]  # two seeds, two runs
    table = capsys.readouterr().out.split("\n\n")[-2].splitlines()
    assert table[0].split() == ["job", "status", "overrides", "steps", "val/accuracy", "val/loss"]
    assert table[1].split()[:4] == ["0", "ok", "seed=0", "2"]
    assert float(table[2].split()[4]) == pytest.approx(jobs[1]["metrics"]["val/accuracy"], abs=1e-4)


def test_a_failing_job_is_recorded_and_the_sweep_goes_on(capsys, tmp_path):
    # a given run_dir is the sweep folder, resolved as composed
    assert main(["--multirun", *TINY, "trainer.max_steps=0,2", f"run_dir={tmp_path}/${{name}}"]) == 1
    folder = tmp_path / "mlp_digits"
    failed, ok = summary(folder)
    assert failed["status"] == "failed" and failed["error"].startswith("ConfigError:")
    assert "trainer.max_steps" in failed["error"] and failed["metrics"] == {}
    assert ok["status"] == "ok" and (folder / "1_trainer.max_steps=2/checkpoints/last.pt").is_file()
    out = capsys.readouterr().out
    assert "1 of 2 jobs ok" in out
    assert [line.split()[:3] for line in out.splitlines() if "ConfigError" in line][-1] == [
        "0", "failed", "trainer.max_steps=0"]


def test_a_folder_holding_a_sweep_needs_overwrite_or_resume(capsys, tmp_path):
    assert main(["-m", *TINY, f"sweep_dir={tmp_path}"]) == 0
    before = (tmp_path / "multirun.yaml").read_text()
    assert main(["-m", *TINY, f"sweep_dir={tmp_path}"]) == 1
    assert "already holds a sweep" in capsys.readouterr().err
    assert (tmp_path / "multirun.yaml").read_text() == before  # the earlier summary is kept
    assert main(["-m", *TINY, f"sweep_dir={tmp_path}", "overwrite=true"]) == 0


def test_the_default_sweep_folder_is_runs_multirun_name_time(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert main(["-m", *TINY]) == 0
    (folder,) = (tmp_path / "runs/multirun/mlp_digits").iterdir()
    assert [j["run_dir"] for j in summary(folder)] == [str(Path("runs/multirun/mlp_digits") / folder.name / "0")]


def test_resuming_a_finished_sweep_keeps_every_record(capsys, tmp_path):
    assert main(["-m", *TINY, "seed=0,1", f"sweep_dir={tmp_path}"]) == 0
    before = summary(tmp_path)
    assert all(job["metrics"] for job in before)
    assert main(["-m", *TINY, "seed=0,1", f"sweep_dir={tmp_path}", "resume=true"]) == 0
    assert summary(tmp_path) == before


def test_an_interrupted_sweep_resumes_started_jobs_and_starts_the_others(capsys, monkeypatch, tmp_path):
    from learnlib.tasks import Classification

    args = ["-m", *TINY, "trainer.max_steps=4", "seed=0,1,2", f"sweep_dir={tmp_path}"]
    original = Classification.training_loss
    calls = {"n": 0}

    def ctrl_c_in_job_2(self, model, batch):  # job 2's step 4, after its step-2 checkpoint
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return original(self, model, batch)

    monkeypatch.setattr(Classification, "training_loss", ctrl_c_in_job_2)
    assert main(args) == 130
    assert "resume=true" in capsys.readouterr().err
    first, second, third = summary(tmp_path)
    assert (first["status"], second["status"], third["status"]) == ("ok", "interrupted", "pending")
    assert not (tmp_path / "2_seed=2").exists()
    monkeypatch.setattr(Classification, "training_loss", original)
    assert main([*args, "resume=true"]) == 0
    jobs = summary(tmp_path)
    assert jobs[0] == first  # the finished job's record is kept, its metrics included
    assert [(j["status"], j["steps"]) for j in jobs] == [("ok", 4)] * 3 and all(j["metrics"] for j in jobs)
    with open(tmp_path / "1_seed=1/metrics.csv") as handle:  # job 2 went on from its step-2 checkpoint
        assert [line.split(",")[0] for line in handle if "val/loss" in line] == ["2", "4"]


def test_a_second_sweep_on_a_busy_sweep_folder_is_refused(capsys, tmp_path):
    holder = lock_folder(tmp_path, "sweep folder", "sweep_dir")
    try:
        assert main(["-m", *TINY, "seed=0,1", f"sweep_dir={tmp_path}", "overwrite=true"]) == 1
    finally:
        unlock_folder(holder)
    err = capsys.readouterr().err
    assert f"sweep folder {tmp_path} is in use by another sweep (pid {os.getpid()}" in err
    assert "pass another sweep_dir=..." in err and not (tmp_path / "multirun.yaml").exists()
    assert main(["-m", *TINY, f"sweep_dir={tmp_path}"]) == 0  # free again once released


def _rank(rank: int, folder: str) -> None:
    os.chdir(folder)
    from learnlib.train import multirun

    # each rank would date the sweep differently: the folder must be rank 0's on both
    multirun.time = SimpleNamespace(strftime=lambda fmt: f"dated-by-rank-{rank}")
    fit, run_dirs = multirun.fit, []
    multirun.fit = lambda cfg: run_dirs.append(cfg.run_dir) or fit(cfg)
    code = multirun.run_sweep([*TINY, "seed=0,1"])
    Path(folder, f"rank{rank}.yaml").write_text(yaml.safe_dump({"code": code, "run_dirs": run_dirs}))


@pytest.mark.slow  # two spawned processes: about 20 s
def test_every_rank_runs_the_same_jobs_in_rank_0s_folder(tmp_path):
    spawn_ranks(_rank, 2, str(tmp_path))
    sweep = Path("runs/multirun/mlp_digits/dated-by-rank-0")
    expected = {"code": 0, "run_dirs": [str(sweep / "0_seed=0"), str(sweep / "1_seed=1")]}
    for rank in (0, 1):
        assert yaml.safe_load((tmp_path / f"rank{rank}.yaml").read_text()) == expected
    assert [j["status"] for j in summary(tmp_path / sweep)] == ["ok", "ok"]
    assert (tmp_path / sweep / "1_seed=1/checkpoints/last.pt").is_file()
