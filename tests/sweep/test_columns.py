"""research.sweep.columns: a pipeline summary.json as flat metric columns, and which are the sweep's headline figures."""

import math

from research.sweep.columns import key_metrics, metric_columns, table_metrics


def pipeline_summary():
    """run_root/summary.json as research.pipeline writes it (key_figures plus run info)."""
    return {
        "stages": {
            "expand_vocab": {"dir": "/c/expand_vocab/k1", "key": "k1", "reused": True, "seconds": 0.25,
                             "built_seconds": 40.0, "built_cpu_seconds": 39.0},
            "init_model": {"dir": "/c/init_model/k2", "key": "k2", "reused": False, "seconds": 12.5,
                           "built_seconds": 12.4, "built_cpu_seconds": 11.0},
            "train": {"dir": "/c/train/k3", "key": "k3", "reused": False, "seconds": 100.04,
                      "built_seconds": None, "built_cpu_seconds": None},
        },
        "overrides": ["init=zero", "tokenizer.target_size=32300"],
        "inputs": {"base_model_parameters": 1000, "base_model_pretraining": {"steps": 5}},
        "tokenizer": {"base_size": 32000, "final_size": 32300, "new_pieces": 300,
                      "compression": {"zh": {"lines": 20, "chars": 5000, "base_tokens": 6000, "expanded_tokens": 3000,
                                             "base_tokens_per_char": 1.2, "expanded_tokens_per_char": 0.6,
                                             "ratio": 0.5},
                                      "en": {"lines": 30, "chars": 9000, "base_tokens": 2000, "expanded_tokens": 2000,
                                             "base_tokens_per_char": 0.2222, "expanded_tokens_per_char": 0.2222,
                                             "ratio": 1.0}}},
        "init": {"strategy": "zero", "old_size": 32000, "new_size": 32300, "parameters": 1000},
        "data": {"records_in": 210, "records_kept": 200, "tokens": 51200, "packs": 400, "packing_efficiency": 0.98,
                 "num_buckets": 5},
        "train": {"steps": 6, "final_loss": 3.25, "tokens_per_s": None, "tokens_seen": {"warmup": 1024, "replay": 512},
                  "plugin": "ddp", "world_size": 1,
                  "stages": {"warmup": {"steps": 4, "last_step": 4, "window": 1, "loss": 3.5,
                                        "by_category": {"zh_news": 3.75, "en_wiki": 3.0}},
                             "replay": {"steps": 2, "last_step": 6, "window": 1, "loss": 3.25, "by_category": {}}}},
        "eval": {"questions": 40,
                 "datasets": {"cmmlu": {"first_token": {"micro": 0.25, "macro": 0.3, "n": 20},
                                        "loglik": {"micro": 0.35, "macro": 0.4, "n": 20}}},
                 "heldout": {"zh": {"perplexity": 30.0, "bits_per_byte": 0.9, "loss_per_token": 3.4, "tokens": 900},
                             "en": {"perplexity": 40.0, "bits_per_byte": 1.1, "loss_per_token": 3.7, "tokens": 100}}},
        "run": {"time": "2026-01-01T00:00:00+00:00", "git_commit": None, "versions": {"python": "3.11.7"},
                "hardware": {"cpus": 16}},
    }


def test_every_reported_number_becomes_a_dotted_column():
    assert metric_columns(pipeline_summary()) == {
        "tokenizer.base_size": 32000, "tokenizer.final_size": 32300, "tokenizer.new_pieces": 300,
        "tokenizer.zh.expanded_tokens_per_char": 0.6, "tokenizer.zh.ratio": 0.5,
        "tokenizer.en.expanded_tokens_per_char": 0.2222, "tokenizer.en.ratio": 1.0,
        "data.records_in": 210, "data.records_kept": 200, "data.tokens": 51200, "data.packs": 400,
        "data.packing_efficiency": 0.98, "data.num_buckets": 5,
        "train.steps": 6, "train.final_loss": 3.25, "train.tokens_seen.warmup": 1024, "train.tokens_seen.replay": 512,
        "train.world_size": 1,
        "train.stages.warmup.loss": 3.5, "train.stages.warmup.by_category.zh_news": 3.75,
        "train.stages.warmup.by_category.en_wiki": 3.0, "train.stages.replay.loss": 3.25,
        "eval.questions": 40,
        "eval.datasets.cmmlu.first_token.micro": 0.25, "eval.datasets.cmmlu.first_token.macro": 0.3,
        "eval.datasets.cmmlu.first_token.n": 20,
        "eval.datasets.cmmlu.loglik.micro": 0.35, "eval.datasets.cmmlu.loglik.macro": 0.4,
        "eval.datasets.cmmlu.loglik.n": 20,
        "eval.heldout.zh.perplexity": 30.0, "eval.heldout.zh.bits_per_byte": 0.9,
        "eval.heldout.zh.loss_per_token": 3.4, "eval.heldout.zh.tokens": 900,
        "eval.heldout.en.perplexity": 40.0, "eval.heldout.en.bits_per_byte": 1.1,
        "eval.heldout.en.loss_per_token": 3.7, "eval.heldout.en.tokens": 100,
        "seconds": 112.8, "stages_reused": 1,
    }


def test_columns_leave_out_strings_bools_none_and_non_finite_numbers():
    summary = {"train": {"completed": True, "plugin": "zero2", "mfu": None, "final_loss": math.nan,
                         "tokens_per_s": math.inf, "grad_norm": -math.inf, "steps": 0, "lr": 0.0},
               "eval": {"questions": 0, "datasets": {}}}
    assert metric_columns(summary) == {"train.steps": 0, "train.lr": 0.0, "eval.questions": 0}


def test_sections_outside_the_figures_and_odd_shapes_are_ignored():
    assert metric_columns({}) == {}
    assert metric_columns({"init": {"old_size": 1}, "overrides": ["a=1"], "run": {"cpus": 4}}) == {}
    # A section that is not a dict, compression that is not a dict, stages that are not dicts.
    odd = {"tokenizer": {"final_size": 5, "compression": ["zh"]}, "data": [1, 2], "eval": 3,
           "train": {"stages": ["warmup"], "steps": 2}, "stages": {"train": "done"}}
    assert metric_columns(odd) == {"tokenizer.final_size": 5, "train.steps": 2, "seconds": 0, "stages_reused": 0}
    assert metric_columns({"stages": {}}) == {}


def test_reused_count_and_seconds_sum_rounded_to_a_tenth():
    stages = {"a": {"seconds": 0.04, "reused": True}, "b": {"seconds": 1.0, "reused": False},
              "c": {"seconds": None, "reused": True}, "d": {"reused": False}}
    assert metric_columns({"stages": stages}) == {"seconds": 1.0, "stages_reused": 2}


def test_key_metrics_of_a_full_pipeline():
    cols = list(metric_columns(pipeline_summary()))
    assert key_metrics(cols) == ["eval.datasets.cmmlu.loglik.micro", "eval.heldout.zh.bits_per_byte",
                                 "train.final_loss", "tokenizer.zh.ratio"]


def test_key_metrics_fall_back_and_prefer_the_shortest_column():
    cols = ["eval.datasets.mmlu_long.first_token.micro", "eval.datasets.ceval.first_token.micro",
            "eval.heldout.en.bits_per_byte", "eval.heldout.de.bits_per_byte",
            "train.stages.warmup.loss", "train.stages.warmup.by_category.zh_news.loss",
            "tokenizer.en.ratio", "tokenizer.fr.ratio", "data.tokens"]
    # no loglik: the shortest .micro; no zh: the shortest (then first by name) bits_per_byte; no final loss:
    # the shortest train loss; no zh compression: the first ratio by name.
    assert key_metrics(cols) == ["eval.datasets.ceval.first_token.micro", "eval.heldout.de.bits_per_byte",
                                 "train.stages.warmup.loss", "tokenizer.en.ratio"]
    # the shortest loglik micro wins among datasets; zh bits per byte beats a shorter other language.
    assert key_metrics(["eval.datasets.cmmlu.loglik.micro", "eval.datasets.mmlu.loglik.micro",
                        "eval.datasets.c.first_token.micro", "eval.heldout.zh.bits_per_byte",
                        "eval.h.en.bits_per_byte"]) == ["eval.datasets.mmlu.loglik.micro",
                                                        "eval.heldout.zh.bits_per_byte"]
    assert key_metrics(["data.tokens", "seconds"]) == []
    assert key_metrics([]) == []


def test_table_metrics_put_key_metrics_first_cap_the_rest_and_keep_time_columns():
    cols = list(metric_columns(pipeline_summary()))
    shown = table_metrics(cols)
    key = key_metrics(cols)
    assert shown[:4] == key
    assert shown == [*key, "tokenizer.en.ratio", "train.stages.warmup.loss", "train.stages.replay.loss",
                     "eval.datasets.cmmlu.first_token.micro", "seconds", "stages_reused"]
    assert len(shown) == len(set(shown))
    limited = table_metrics(cols, limit=3)
    assert limited == [*key[:3], "seconds", "stages_reused"]  # the cap leaves the time columns alone
    assert table_metrics(["data.tokens", "x.ratio"]) == ["x.ratio"]
    assert table_metrics([]) == []
