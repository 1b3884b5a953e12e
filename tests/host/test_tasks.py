"""Background tasks (comptoir.tasks): started, stopped one way, their health."""

from __future__ import annotations

import threading
import time

from comptoir.tasks import JobQueue, ThreadTask, periodic


def test_a_periodic_task_runs_at_start_survives_an_error_and_stops_at_once() -> None:
    rounds: list[float] = []

    def job() -> None:
        rounds.append(time.monotonic())
        if len(rounds) == 2:
            raise RuntimeError("one bad round")

    task = periodic("t", 0.02, job, at_start=True)
    assert task.health() == "idle"
    task.start()
    deadline = time.monotonic() + 5
    while len(rounds) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(rounds) >= 4 and task.health() == "running"
    started = time.monotonic()
    task.stop()
    assert time.monotonic() - started < 1 and task.health() == "stopped"


def test_a_task_waits_its_period_first_unless_at_start() -> None:
    ran = threading.Event()
    task = periodic("t", 60.0, ran.set, at_start=False)
    task.start()
    assert not ran.wait(0.1)
    task.stop()
    assert task.health() == "stopped" and not ran.is_set()


def test_a_task_that_ends_by_an_error_says_so() -> None:
    def run(stop: threading.Event) -> None:
        raise RuntimeError("broken")

    task = ThreadTask("t", run)
    task.start()
    task.stop()
    assert task.health() == "failed"


def test_a_job_queue_runs_jobs_in_order_and_finishes_them_before_it_stops() -> None:
    done: list[int] = []

    def handle(n: int) -> None:
        if n == 2:
            raise ValueError("a bad job")
        time.sleep(0.01)
        done.append(n)

    q: JobQueue[int] = JobQueue("q", handle)
    q.start()
    for n in range(6):
        q.put(n)
    q.stop()
    assert done == [0, 1, 3, 4, 5] and q.health() == "stopped"
