"""Every sweep in sweeps/ composes over the pipeline's config and defines the jobs it says; the Slurm launcher
composes and builds its sbatch script without submitting anything."""

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from research.cli import CONF_DIR
from research.config import to_object
from research.sweep.params import as_dict, expand, swept_keys

ROOT = Path(__file__).resolve().parents[2]
SWEEPS = ROOT / "sweeps"
# Only the pipeline reads run_root from the sweep (`${hydra:runtime.output_dir}`, set when a job runs).
JOB_ROOT = "run_root=/tmp/graft-sweep-job"

EXPECTED = {
    "init_strategy": ("init", sorted(p.stem for p in (Path(CONF_DIR) / "init").glob("*.yaml"))),
    "vocab_size": ("tokenizer.target_size", ["32000", "48000", "69104", "100000"]),
    "bucket_count": ("buckets", ["one", "five", "default", "twenty"]),
    "plugin": ("plugin", ["ddp", "zero2", "hybrid"]),
}


def compose_sweep(name: str, overrides=(), hydra_config: bool = True):
    """As `python -m research.pipeline --config-dir sweeps --config-name <name>` composes it."""
    with initialize_config_dir(config_dir=str(SWEEPS), version_base="1.3"):
        return compose(name, overrides=[f"hydra.searchpath=[file://{CONF_DIR}]", *overrides],
                       return_hydra_config=hydra_config)


def test_every_sweep_file_is_covered():
    assert sorted(p.stem for p in SWEEPS.glob("*.yaml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sweep_composes_as_a_multirun_of_the_pipeline(name):
    cfg = compose_sweep(name, ["experiment=demo"])
    assert cfg.hydra.mode.name == "MULTIRUN"
    assert cfg.hydra.sweep.dir.startswith(f"multirun/{name}/")
    assert cfg.pipeline.stages == ["demo_inputs", "expand_vocab", "init_model", "prepare_data", "train", "evaluate"]
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params["logger.group"] == name  # one W&B group per sweep, passed to every stage as an override
    assert OmegaConf.to_container(cfg, resolve=False)["run_root"] == "${hydra:runtime.output_dir}"
    header = (SWEEPS / f"{name}.yaml").read_text().splitlines()[:3]
    cmd = f"python -m research.pipeline --config-dir sweeps --config-name {name} experiment=demo"
    assert any(cmd in line for line in header), header


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sweep_expands_to_its_jobs_and_each_job_validates(name):
    key, values = EXPECTED[name]
    cfg = compose_sweep(name, ["experiment=demo"])
    jobs = expand(OmegaConf.to_container(cfg.hydra.sweeper.params), ["experiment=demo"])
    assert sorted(as_dict(j)[key] for j in jobs) == sorted(values) and len(jobs) == len(values)
    assert swept_keys([as_dict(j) for j in jobs]) == [key]
    for job in jobs:
        job_cfg = to_object(compose_sweep(name, [*job, JOB_ROOT], hydra_config=False))
        v = as_dict(job)[key]
        if name == "init_strategy":
            assert job_cfg.init.strategy == v
        elif name == "vocab_size":
            assert job_cfg.tokenizer.target_size == int(v) and job_cfg.tokenizer.name == "train_sp"
        elif name == "bucket_count":
            assert job_cfg.buckets.num_bins == {"one": 1, "five": 5, "default": 10, "twenty": 20}[v]
        else:
            assert job_cfg.plugin.name == v
            # hybrid's tensor parallelism needs the vocabulary padded to 64 x tp: every plugin gets the same one
            assert job_cfg.tokenizer.final_size % (64 * job_cfg.plugin.mesh()["tp"]) == 0
            assert job_cfg.tokenizer.final_size == 69120
        assert job_cfg.logger.group == name and job_cfg.pipeline.cache_dir == "outputs/cache"


def test_command_line_narrows_a_sweep_like_hydra():
    params = {"init": "subword_mean,subword_mean_ref,mean_all,mvn,random,zero", "logger.group": "init_strategy"}
    jobs = expand(params, ["init=zero,random", "experiment=demo"])
    assert jobs == [["init=zero", "logger.group=init_strategy", "experiment=demo"],
                    ["init=random", "logger.group=init_strategy", "experiment=demo"]]
    two_axes = expand({"init": "zero,random"}, ["buckets=one,five"])
    assert len(two_axes) == 4 and swept_keys([as_dict(j) for j in two_axes]) == ["init", "buckets"]


# ---- Slurm launcher --------------------------------------------------------------------------------------------

def _launcher(*overrides):
    import research.config  # noqa: F401  (registers the schema the pipeline config starts from)

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("pipeline", overrides=["hydra/launcher=slurm", *overrides], return_hydra_config=True)


def test_local_launcher_stays_the_default():
    import research.config  # noqa: F401

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("pipeline", return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("BasicLauncher")
    assert compose_sweep("init_strategy").hydra.launcher._target_.endswith("BasicLauncher")


def test_slurm_launcher_keys_are_the_plugins():
    from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf

    cfg = _launcher("experiment=demo")
    assert cfg.hydra.launcher._target_ == SlurmQueueConf._target_
    assert set(cfg.hydra.launcher) <= set(OmegaConf.structured(SlurmQueueConf))
    assert OmegaConf.is_missing(cfg.hydra.launcher, "partition")  # no default partition: the user names one
    with pytest.raises(Exception, match="hydra.launcher.gpus"):
        _launcher("hydra.launcher.gpus=8")  # a misspelt key fails at compose time
    # It composes on top of a sweep too (the way sweeps are sent to a cluster).
    sweep = compose_sweep("plugin", ["hydra/launcher=slurm", "hydra.launcher.partition=gpu"])
    assert sweep.hydra.launcher.partition == "gpu" and sweep.hydra.mode.name == "MULTIRUN"


def test_slurm_launcher_builds_its_sbatch_script_without_submitting(tmp_path, monkeypatch):
    """The launcher object and submitit's sbatch text, from the composed config; no Slurm command ever runs (a
    stand-in `srun` that only fails is first on PATH, because submitit checks that one exists)."""
    import submitit
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    cfg = _launcher("hydra.launcher.partition=gpu", "hydra.launcher.account=proj", f"hydra.sweep.dir={tmp_path}",
                    "hydra.job.name=pipeline")
    node = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    launcher = instantiate(node)
    assert type(launcher).__name__ == "SlurmLauncher" and launcher.params["gpus_per_node"] == 8

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bin_dir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf))
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    text = executor._executor._make_submission_file_text("python -m research.pipeline", "uid")
    for line in ("--partition=gpu", "--account=proj", "--gpus-per-node=8", "--ntasks-per-node=1",
                 "--cpus-per-task=64", "--time=2880", "--job-name=pipeline"):
        assert re.search(rf"^#SBATCH {re.escape(line)}$", text, re.M), line
    assert not list(tmp_path.glob(".submitit/*"))
