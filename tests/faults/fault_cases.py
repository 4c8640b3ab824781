"""The fault suite's table: every bad input and kill point Graft promises to handle, by app, with the promise and
the test that asserts it. docs/faults.md shows this table (tests/faults/test_fault_table.py keeps them equal and
checks that every test named here exists and is not skipped or expected to fail by design).

Promises: `one line` = a single `error: ...` line on stderr, no traceback, a non-zero exit (2 for bad input,
128 + signal for an interrupt), and nothing written under the output's final name; `reject` = the record is
counted and written to rejects.jsonl with its reason; `resume` = rerunning the same command ends with the losses
of an uninterrupted run (bit for bit).
"""

from typing import NamedTuple


class Fault(NamedTuple):
    app: str
    kind: str
    """"bad input" or "kill point"."""
    fault: str
    promise: str
    test: str
    """path::function of the test that asserts the promise."""


BAD, KILL = "bad input", "kill point"

FAULTS = [
    # demo_inputs
    Fault("demo_inputs", BAD, "a base model without one row per base token (Tekken with model.vocab_size=32000)",
          "one line naming model.vocab_size and the tokenizer's size",
          "tests/test_pipeline_bytelevel.py::test_demo_inputs_refuses_a_base_model_without_a_row_per_tekken_token"),
    # expand_vocab
    Fault("expand_vocab", BAD, "base tokenizer path does not exist", "one line naming tokenizer.base_path",
          "tests/test_expand_vocab.py::test_missing_base_path"),
    Fault("expand_vocab", BAD, "target smaller than the base vocabulary", "one line naming the value and the base size",
          "tests/test_expand_vocab.py::test_target_smaller_than_base_cli"),
    Fault("expand_vocab", BAD, "a source file is missing", "one line naming the file",
          "tests/test_expand_vocab.py::test_unreadable_corpus"),
    Fault("expand_vocab", BAD, "corrupt line in a pieces jsonl", "one line naming file:line",
          "tests/test_expand_vocab.py::test_corrupt_jsonl_cli"),
    Fault("expand_vocab", BAD, "error in a later line of the training text", "one line naming file:line and the reason",
          "tests/tokenizer/test_sources.py::test_train_sp_keeps_the_message_of_an_error_after_the_first_line"),
    Fault("expand_vocab", BAD, "a tokenizer.json whose model is WordPiece or Unigram, or a byte-level BPE without a "
          "pre-tokenizer", "one line naming the file and the reason",
          "tests/test_expand_vocab.py::test_bad_bytelevel_base_is_one_line"),
    Fault("expand_vocab", BAD, "a SentencePiece Unigram model as the base", "one line naming the file and its model type",
          "tests/test_expand_vocab.py::test_unigram_sentencepiece_base_is_one_line"),
    Fault("expand_vocab", BAD, "a byte-level source (train_bpe) on a SentencePiece base", "one line naming the source",
          "tests/test_expand_vocab.py::test_train_bpe_on_a_sentencepiece_base_is_one_line"),
    Fault("expand_vocab", BAD, "target the sources cannot reach (5,000,000)", "one line within seconds, no temporary folder",
          "tests/test_expand_vocab.py::test_unreachable_target_fails_in_seconds_leaving_nothing"),
    Fault("expand_vocab", BAD, "a failing rerun over an existing output", "the previous output stays as it was",
          "tests/test_expand_vocab.py::test_failed_run_keeps_previous_output"),
    Fault("expand_vocab", KILL, "SIGTERM mid-run", "one line, exit 143, no temporary folder",
          "tests/test_expand_vocab.py::test_sigterm_mid_run_is_one_line_and_leaves_no_temporary_folder"),
    # init_model
    Fault("init_model", BAD, "unknown init strategy", "one line listing the known strategies",
          "tests/test_init_model.py::test_bad_value_cli"),
    Fault("init_model", BAD, "no tokenizer folder", "one line naming paths.tokenizer",
          "tests/test_init_model.py::test_init_without_tokenizer"),
    Fault("init_model", BAD, "truncated base model.safetensors", "one line naming the file and both sizes",
          "tests/model/test_weights.py::test_init_model_on_a_truncated_base_model_is_one_line"),
    Fault("init_model", BAD, "unreadable tokenizer file", "one line naming the file",
          "tests/model/test_weights.py::test_init_model_with_an_unreadable_tokenizer_file_is_one_line"),
    Fault("init_model", BAD, "a strategy that reads text (focus, token_distill, guarded) given none",
          "one line naming init.domain_text (or init.base_text), before the model loads",
          "tests/test_init_model.py::test_corpus_strategy_without_text_is_one_line"),
    Fault("init_model", BAD, "token_distill with a budget of 0 steps", "one line naming init.distill_steps",
          "tests/test_init_model.py::test_token_distill_budget_zero_is_one_line"),
    # prepare_data
    Fault("prepare_data", BAD, "invalid UTF-8, broken JSON, non-objects, missing or non-string fields", "reject",
          "tests/data/test_read.py::test_bad_lines_are_rejected_and_neighbours_kept"),
    Fault("prepare_data", BAD, "a 50 MB line", "reject, without parsing it",
          "tests/data/test_read.py::test_fifty_megabyte_line_is_rejected_without_parsing"),
    Fault("prepare_data", BAD, "missing input file or folder", "one line before any work",
          "tests/data/test_read.py::test_missing_inputs_fail_before_work"),
    Fault("prepare_data", BAD, "UTF-8 BOM at the start of a file", "stripped and counted; the first record kept",
          "tests/data/test_read.py::test_utf8_bom_is_dropped_and_counted"),
    Fault("prepare_data", BAD, "gzip, zstd, bz2 or xz input, whatever its name", "read as plain text",
          "tests/data/test_read.py::test_compressed_inputs_read_like_plain_ones_whatever_their_name"),
    Fault("prepare_data", BAD, "zip or UTF-16 input", "one line naming the file and the format",
          "tests/data/test_read.py::test_zip_utf16_and_missing_zstandard_fail_before_work_naming_the_file"),
    Fault("prepare_data", BAD, "truncated gzip stream", "one line naming the file",
          "tests/data/test_read.py::test_truncated_gzip_is_one_error_naming_the_file"),
    Fault("prepare_data", BAD, "empty input file", "a warning in the log and the manifest",
          "tests/data/test_read.py::test_empty_files_are_counted_and_warned"),
    Fault("prepare_data", BAD, "a category with no kept records", "one line, nothing written",
          "tests/data/test_prepare.py::test_cli_empty_category_is_one_line_error_and_writes_nothing"),
    Fault("prepare_data", BAD, "the same with data.allow_empty=true", "a warning in the log and the manifest",
          "tests/data/test_prepare.py::test_allowed_empty_category_is_a_warning_in_log_and_manifest"),
    Fault("prepare_data", BAD, "unreadable input (a FIFO, a folder, a read error)", "one line naming the file",
          "tests/data/test_read.py::test_unreadable_inputs_fail_before_work_naming_the_file"),
    Fault("prepare_data", BAD, "input file removed during the run", "one line naming the file",
          "tests/data/test_read.py::test_file_that_disappears_after_the_check_is_one_error_naming_it"),
    Fault("prepare_data", BAD, "bad tokenizer or input settings on the command line", "one line, exit 2",
          "tests/data/test_prepare.py::test_cli_bad_input_is_one_line_and_exit_2"),
    Fault("prepare_data", BAD, "out-of-range config values", "one line naming the key",
          "tests/data/test_prepare.py::test_bad_config_values_name_the_key"),
    Fault("prepare_data", KILL, "a task that fails on one shard", "one line naming the stage, the shard and its log; "
          "no output folder; the finished tasks kept",
          "tests/data/test_prepare.py::test_a_failing_shard_fails_the_run_naming_it_and_writes_nothing"),
    Fault("prepare_data", KILL, "SIGKILL of the whole run mid-stage", "no output folder; the rerun reuses the "
          "finished tasks and writes the same bytes",
          "tests/data/test_prepare.py::test_cli_end_to_end_is_deterministic_and_meets_the_contract"),
    Fault("prepare_data", BAD, "data.engine.executor=ray without ray installed", "one line naming the package",
          "tests/data/test_executors.py::test_ray_executor_without_ray_is_one_line"),
    # every app's config
    Fault("any app", BAD, "misspelt new key (`+data.maxlength=5`)", "one line naming the key and the closest known one",
          "tests/config/test_unknown_keys.py::test_cli_misspelt_new_key_is_one_line_exit_2_and_writes_nothing"),
    Fault("any app", BAD, "an option the chosen plugin does not take", "fails at compose time naming the key",
          "tests/train/test_train_cli.py::test_plugin_option_not_taken"),
    Fault("any app", BAD, "a second run into a folder in use", "one line naming the folder and the pid holding it",
          "tests/test_locks.py::test_an_app_refuses_a_folder_in_use_and_a_killed_holder_leaves_no_stale_lock"),
    Fault("any app", BAD, "two torchrun jobs into one folder", "one holder; the other job's one line; no deadlock",
          "tests/test_locks.py::test_two_torchrun_jobs_into_one_folder"),
    Fault("any app", BAD, "two processes writing one folder at once", "both succeed in turn; nothing left over",
          "tests/test_atomic.py::test_two_processes_writing_one_folder_at_once_both_succeed_and_leave_nothing"),
    Fault("any app", KILL, "kill -9 while a folder is being written", "leftovers removed by the next run",
          "tests/test_atomic.py::test_a_killed_writers_leftovers_go_on_the_next_run_a_live_writers_stay"),
    Fault("any app", BAD, "default logger (wandb offline)", "no connection and no DNS query (strace)",
          "tests/test_offline.py::test_default_logger_run_makes_no_network_attempt"),
    # train
    Fault("train", BAD, "freeze=new_rows_only on a model init_model did not expand, or under a plugin it is not "
          "tested with", "one line naming schedule.stages.N.freeze, before any process group",
          "tests/train/test_new_rows.py::test_new_rows_only_needs_an_expanded_model_and_a_tested_plugin"),
    Fault("train", KILL, "SIGKILL inside a new_rows_only stage (ddp, zero2)", "resume; base rows bit-identical",
          "tests/train/test_new_rows.py::test_new_rows_only_keeps_base_rows_and_resumes_exactly"),
    Fault("train", BAD, "no dataset folder", "one line naming paths.data",
          "tests/train/test_train_cli.py::test_missing_dataset"),
    Fault("train", BAD, "data tokenized for another vocabulary", "one line naming the id and the model's size",
          "tests/train/test_train_cli.py::test_vocab_mismatch"),
    Fault("train", BAD, "checkpoint of an incompatible run", "one line before any compute",
          "tests/train/test_train_cli.py::test_incompatible_checkpoint"),
    Fault("train", BAD, "truncated or garbage model.safetensors", "one line naming the file",
          "tests/train/test_train_cli.py::test_corrupt_weights"),
    Fault("train", BAD, "resume with another lr or other data; a torn metrics line",
          "one line listing the keys that differ; the torn line dropped with a warning",
          "tests/train/test_train_cli.py::test_resume_checks_the_config_and_survives_a_torn_metrics_line"),
    Fault("train", KILL, "SIGKILL of rank 0 while a checkpoint is written (ddp, 2 processes)", "resume",
          "tests/train/test_distributed.py::test_ddp_sigkill_and_resume_is_bit_exact"),
    Fault("train", KILL, "SIGKILL of rank 0 after a step, in a frozen stage (zero2)", "resume",
          "tests/train/test_distributed.py::test_zero2_checkpoints_frozen_stage_and_resumes"),
    Fault("train", KILL, "SIGKILL in the middle of a stage (hybrid pp=2)", "resume",
          "tests/train/test_parallel_mesh.py::test_hybrid_pp2_and_sp2_match_one_process"),
    Fault("train", KILL, "SIGKILL of torchrun and every rank at once", "resume from the last checkpoint",
          "tests/train/test_interrupts.py::test_sigkill_of_every_process_at_once_resumes_from_the_last_checkpoint_bit_exact"),
    Fault("train", KILL, "Ctrl-C (SIGINT) under torchrun", "checkpoint at the next step, one line, resume",
          "tests/train/test_interrupts.py::test_sigint_under_torchrun_saves_the_step_and_resumes_bit_exact"),
    Fault("train", BAD, "a model folder of a family Graft does not know, or one without a shardformer policy under "
          "plugin=hybrid (Phi3)", "one line naming config.json (or plugin=hybrid) and the architecture",
          "tests/train/test_family_runs.py::test_architecture_refusals_before_the_process_group"),
    Fault("train", KILL, "SIGKILL of rank 0 mid-run on Mistral (ddp) and tied Qwen2 (zero2), fused loss, doc mask",
          "resume", "tests/train/test_family_runs.py::test_kill_resume_and_hybrid_match_uninterrupted"),
    # evaluate
    Fault("evaluate", BAD, "missing model folder, unknown dataset, bad values", "one line, exit 2",
          "tests/eval/test_evaluation.py::test_bad_input_is_one_line_exit_2"),
    Fault("evaluate", BAD, "malformed questions", "reject (rejects.jsonl and a warning)",
          "tests/eval/test_evaluation.py::test_malformed_questions_go_to_rejects_file"),
    Fault("evaluate", BAD, "tokenizer larger than the model's embedding", "one line before any forward",
          "tests/eval/test_evaluation.py::test_tokenizer_larger_than_the_model_is_one_line"),
    Fault("evaluate", BAD, "special ids outside the embedding", "one line before any forward",
          "tests/eval/test_evaluation.py::test_special_ids_must_index_the_embedding"),
    Fault("evaluate", BAD, "truncated or garbage weights", "one line naming the file",
          "tests/eval/test_evaluation.py::test_damaged_weights_are_one_line"),
    Fault("evaluate", BAD, "unreadable dataset, held-out text or model file", "one line naming the file",
          "tests/eval/test_evaluation.py::test_unreadable_input_is_one_line_naming_the_file"),
    Fault("evaluate", BAD, "default logger (wandb offline)", "no connection and no DNS query (strace)",
          "tests/test_offline.py::test_evaluate_with_the_default_logger_makes_no_network_attempt"),
    # pipeline
    Fault("pipeline", BAD, "a stage fails", "one line naming the stage and its log",
          "tests/test_pipeline.py::test_a_failing_stage_stops_with_one_line"),
    Fault("pipeline", KILL, "kill -9 of the pipeline during training", "the stage's whole process group dies; lock free",
          "tests/orchestrate/test_supervision.py::test_kill_9_of_the_pipeline_takes_its_train_stage_with_it"),
    Fault("pipeline", KILL, "SIGTERM of the pipeline", "its stage stopped first; one line, exit 143",
          "tests/orchestrate/test_supervision.py::test_sigterm_of_the_pipeline_stops_its_stage_then_exits_with_one_line"),
    Fault("pipeline", KILL, "rerun while a killed run's stage still writes", "waits for it; never two writers",
          "tests/orchestrate/test_supervision.py::test_a_rerun_waits_for_an_earlier_stage_still_writing_its_folder"),
    Fault("pipeline", KILL, "kill -9 of the launcher of a torchrun stage", "torchrun and its workers die",
          "tests/orchestrate/test_launch.py::test_a_sigkilled_launcher_takes_torchrun_and_its_workers_with_it"),
    # collect_sweep
    Fault("collect_sweep", BAD, "a plain run root instead of a sweep folder", "one line, nothing written",
          "tests/test_collect_sweep.py::test_a_plain_run_root_is_a_one_line_error_and_nothing_is_written"),
]
