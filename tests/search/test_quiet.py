"""quiet.py: Tune's output switches and log filters apply for the search and are undone after."""

from __future__ import annotations

import logging
import os

from deft_tune.search import quiet


def test_quiet_driver_sets_tunes_switches_keeps_the_users_and_restores(monkeypatch):
    monkeypatch.delenv("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", raising=False)
    monkeypatch.setenv("RAY_AIR_NEW_OUTPUT", "1")  # the user's choice wins
    with quiet.quiet_driver():
        assert os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] == "1"
        assert os.environ["RAY_AIR_NEW_OUTPUT"] == "1"
        assert not logging.getLogger("ray.tune.tune").isEnabledFor(logging.INFO)
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ
    assert os.environ["RAY_AIR_NEW_OUTPUT"] == "1"


def test_only_the_token_notice_is_dropped(caplog):
    logger = logging.getLogger(quiet._TOKEN_SETUP)
    with quiet.quiet_driver(), caplog.at_level(logging.WARNING, logger=quiet._TOKEN_SETUP):
        logger.warning("Token authentication is enabled for this Ray cluster.")
        logger.warning("Token authentication is disabled for this Ray cluster.")
    assert [r.getMessage() for r in caplog.records] == [
        "Token authentication is disabled for this Ray cluster."
    ]


def test_file_loggers_keep_result_files_without_tensorboard():
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    kinds = {type(c) for c in quiet.file_loggers()}
    assert kinds == {CSVLoggerCallback, JsonLoggerCallback}
