import operator

import pytest

from deft_tune.metrics._parallel import SharedTasks


def test_results_in_task_order_longest_first_here():
    ran = []

    def record(x):
        ran.append(x)
        return 10 * x

    tasks = [(1,), (2,), (3,), (4,)]
    fits = SharedTasks(record, tasks, costs=[1, 5, 3, 5]).start()
    assert fits.results() == [10, 20, 30, 40]
    assert ran == [2, 4, 3, 1]  # highest cost first; ties keep the task order


def test_workers_give_what_this_process_gives():
    tasks = [(a, b) for a in range(7) for b in (3, 11)]
    costs = list(range(len(tasks)))
    alone = SharedTasks(pow, tasks, costs).start().results()
    assert alone == [pow(*t) for t in tasks]
    assert SharedTasks(pow, tasks, costs, n_jobs=2).start().results() == alone


def test_a_workers_error_is_raised():
    fits = SharedTasks(operator.truediv, [(1, 2), (1, 0)], costs=[0, 1], n_jobs=2).start()
    with pytest.raises(ZeroDivisionError):
        fits.results()


def test_an_error_here_drops_the_waiting_tasks():
    ran = []

    def fail_on_two(x):
        ran.append(x)
        if x == 2:
            raise RuntimeError("boom")
        return x

    fits = SharedTasks(fail_on_two, [(1,), (2,), (3,)], costs=[3, 2, 1]).start()
    with pytest.raises(RuntimeError, match="boom"):
        fits.results()
    assert ran == [1, 2]


def test_costs_must_match_tasks():
    with pytest.raises(ValueError, match="2 costs for 1 tasks"):
        SharedTasks(pow, [(1, 2)], costs=[1, 2])
