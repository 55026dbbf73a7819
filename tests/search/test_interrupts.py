"""The storage watch: a local storage that fills up stops the search as an interrupt does."""

from __future__ import annotations

import threading

import pytest

from deft_tune.search import interrupts
from deft_tune.search.interrupts import graceful_stop, stop_when_full
from tests import scaled


def test_a_full_storage_stops_the_search_as_an_interrupt_does(monkeypatch, tmp_path):
    monkeypatch.setattr(interrupts, "space_low", lambda folder: True)
    with graceful_stop() as stop:  # outside Tune's fit the stop is a KeyboardInterrupt
        with pytest.raises(KeyboardInterrupt):
            with stop_when_full(str(tmp_path), stop, every_s=0.01):
                threading.Event().wait(scaled(60))  # the watcher's SIGTERM ends the wait
    assert stop.full_storage == str(tmp_path) and stop.requested


def test_a_storage_with_room_or_a_remote_one_is_left_alone(tmp_path):
    with graceful_stop() as stop:
        with stop_when_full(str(tmp_path), stop, every_s=0.01):
            threading.Event().wait(0.1)
        with stop_when_full(None, stop, every_s=0.01):
            pass
    assert stop.full_storage is None and not stop.requested
