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


def test_an_http_server_is_a_task_stopped_the_same_way() -> None:
    import http.server
    import urllib.request

    from comptoir.http.serving import HttpServing
    from comptoir.tasks import Task

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    task: Task = HttpServing("hello", httpd, poll_interval=0.05)
    assert task.health() == "idle"
    task.start()
    assert task.health() == "running"
    with urllib.request.urlopen(f"http://127.0.0.1:{httpd.server_address[1]}/") as r:
        assert r.read() == b"ok"
    task.stop()
    assert task.health() == "stopped"
    # Stopped before it started: the socket is closed, nothing waits for a loop never run.
    never = HttpServing("never", http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello))
    never.stop()
    assert never.health() == "idle"


def test_a_board_connection_is_a_task_stopped_the_same_way() -> None:
    """A board's thread (its port, its link) starts, reports its health and stops as every
    other background task: told, then joined, its port closed."""
    import os
    import queue

    from comptoir.board_link import BoardConnection
    from comptoir.events import PortOpened
    from comptoir.tasks import Task

    master, slave = os.openpty()
    try:
        events: queue.Queue[object] = queue.Queue()
        conn: Task = BoardConnection(os.ttyname(slave), events, heartbeat_ms=200)
        assert conn.name == f"board {os.ttyname(slave)}" and conn.health() == "idle"
        conn.start()
        assert isinstance(events.get(timeout=5), PortOpened) and conn.health() == "running"
        started = time.monotonic()
        conn.stop()
        assert time.monotonic() - started < 1 and conn.health() == "stopped"
    finally:
        os.close(master)
        os.close(slave)


def test_the_counter_screen_reader_is_a_task_that_applies_what_came_before_its_stop() -> None:
    from comptoir.http.feed import EventFeed
    from comptoir.screen.counters import Counters
    from comptoir.tasks import Task

    feed = EventFeed()
    counters = Counters(feed)
    task: Task = counters
    assert task.name == "screen counters" and task.health() == "idle"
    counters.start()
    assert task.health() == "running"
    for n in range(50):
        feed.publish("board", {"port": f"/dev/b{n}", "state": "up"})
    task.stop()
    assert task.health() == "stopped"
    assert len(counters.snapshot()[1]) == 50
