"""python -m research.pipeline [experiment=demo] [init=mvn] [pipeline.nproc=2] ...

Runs demo_inputs, expand_vocab, init_model, prepare_data, train and evaluate in order (`pipeline.stages`), each as
`python -m research.<app>` with the same overrides, reusing a stage whose output for the same config is already in
the cache (`pipeline.cache_dir`); then writes run_root/stages.json, summary.json and report/ (docs/apps/pipeline.md).
"""

from hydra.core.hydra_config import HydraConfig

from research.cli import app, log
from research.orchestrate.run_report import key_figures, write_report
from research.orchestrate.run_stages import run_pipeline
from research.orchestrate.supervision import stop_signals_raise
from research.runinfo import write_run_files


@app("pipeline")
def main(cfg, raw):
    overrides = list(HydraConfig.get().overrides.task)
    # SIGTERM, like SIGINT, stops the running stage's process group, then exits with one line.
    with stop_signals_raise():
        stages = run_pipeline(cfg, raw, overrides)
        dirs = {name: r["dir"] for name, r in stages.items()}
        figures = key_figures(stages, dirs, overrides)
        write_run_files(cfg.run_root, raw, figures)
        if cfg.pipeline.report:
            log.info("report: %s", write_report(cfg.run_root, figures, dirs))
    return figures


if __name__ == "__main__":
    main()
