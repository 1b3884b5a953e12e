"""OBJECT_CHUNK reassembly: limits, interleaving, session end; property tests."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comptoir.events import BoardDown, Message
from comptoir.objects import Chunk, Reassembler, chunk_payload, parse_chunk
from comptoir_link import frames as F

JPEG = F.OBJ_FRAME_JPEG


def chunks(oid: int, data: bytes, size: int, kind: int = JPEG) -> list[Chunk]:
    return [Chunk(kind, oid, len(data), o, data[o:o + size]) for o in range(0, len(data), size)]


def test_parse_round_trip_and_short_header() -> None:
    c = parse_chunk(chunk_payload(3, 0x8001, 10, 4, b"abc"))
    assert c == Chunk(3, 0x8001, 10, 4, b"abc")
    with pytest.raises(ValueError):
        parse_chunk(b"\x02\x01\x00")


def test_in_order_chunks_complete_an_object() -> None:
    r = Reassembler()
    data = bytes(range(256)) * 10
    out = [r.push("p", c) for c in chunks(7, data, 300)]
    assert out[:-1] == [None] * (len(out) - 1) and out[-1] == data
    assert r.held_bytes == 0 and r.partial_count() == 0


@pytest.mark.parametrize("bad", [
    Chunk(JPEG, 1, 100, 60, b"x" * 10),  # gap
    Chunk(JPEG, 1, 100, 40, b"x" * 10),  # overlap (a repeat)
    Chunk(JPEG, 1, 101, 50, b"x" * 10),  # another total
    Chunk(F.OBJ_FRAME_GRAY, 1, 100, 50, b"x" * 10),  # another kind
    Chunk(JPEG, 1, 100, 50, b"x" * 60),  # past the end
])
def test_a_chunk_that_does_not_continue_drops_the_object(bad: Chunk) -> None:
    r = Reassembler()
    assert r.push("p", Chunk(JPEG, 1, 100, 0, b"a" * 50)) is None
    assert r.push("p", bad) is None
    assert r.partial_count() == 0 and r.held_bytes == 0
    # The rest of that object is ignored, never completed from the middle.
    assert r.push("p", Chunk(JPEG, 1, 100, 50, b"b" * 50)) is None
    assert r.counters["orphan_chunks"] == 1


def test_oversize_and_empty_totals_are_refused_before_any_allocation() -> None:
    r = Reassembler(max_object=1000)
    assert r.push("p", Chunk(JPEG, 1, 1001, 0, b"x")) is None
    assert r.push("p", Chunk(JPEG, 2, 2**32 - 1, 0, b"x")) is None
    assert r.push("p", Chunk(JPEG, 3, 0, 0, b"")) is None
    assert r.held_bytes == 0
    assert r.counters == {"oversize_objects": 2, "empty_objects": 1}


def test_interleaved_objects_within_the_limit() -> None:
    r = Reassembler(max_partial=2)
    a, b = b"A" * 90, b"B" * 70
    ca, cb = chunks(1, a, 30), chunks(2, b, 30)
    done = []
    for x, y in zip(ca, cb, strict=False):
        done += [r.push("p", x), r.push("p", y)]
    done += [r.push("p", c) for c in ca[len(cb):]]
    assert sorted(d for d in done if d) == [a, b]


def test_a_new_object_supersedes_the_oldest_partial() -> None:
    r = Reassembler(max_partial=1)
    r.push("p", Chunk(JPEG, 1, 100, 0, b"x" * 10))
    r.push("q", Chunk(JPEG, 1, 100, 0, b"x" * 10))  # another port: independent
    assert r.push("p", Chunk(JPEG, 2, 5, 0, b"12345")) == b"12345"
    assert r.counters["dropped_superseded"] == 1 and r.partial_count("q") == 1


def test_memory_budget_evicts_the_least_recent() -> None:
    r = Reassembler(max_object=100, max_partial=8, max_total=250)
    for oid in range(3):
        r.push("p", Chunk(JPEG, oid, 100, 0, b"x"))
    assert r.held_bytes <= 250 and r.counters["dropped_memory"] == 1


def test_board_down_drops_partials_of_that_port_only() -> None:
    r = Reassembler()
    r.push("p", Chunk(JPEG, 1, 100, 0, b"x"))
    r.push("q", Chunk(JPEG, 1, 100, 0, b"x"))
    assert r.drop_port("p") == 1
    assert r.partial_count("p") == 0 and r.partial_count("q") == 1
    # The next session's chunks for the same id do not continue the old object.
    assert r.push("p", Chunk(JPEG, 1, 100, 1, b"y" * 99)) is None


def test_pipeline_drops_partials_on_board_down() -> None:
    from comptoir.qr import QrPipeline

    pipe = QrPipeline(None, lambda *a: None)
    pipe.on_event(Message("p", "b", F.OBJECT_CHUNK, chunk_payload(JPEG, 1, 100, 0, b"x"), 1.0))
    assert pipe.reassembler.partial_count("p") == 1
    pipe.on_event(BoardDown("p", "link lost"))
    assert pipe.reassembler.partial_count("p") == 0


# ---------------------------------------------------------------- properties
objects_st = st.dictionaries(st.integers(0, 5), st.binary(min_size=1, max_size=300),
                             min_size=1, max_size=4)


@st.composite
def mangled_streams(draw: st.DrawFn) -> tuple[dict[int, bytes], list[tuple[str, Chunk]]]:
    """Correct chunkings of several objects on two ports, interleaved, then structurally
    damaged: chunks dropped, repeated, moved; fields of some chunks changed."""
    objs = draw(objects_st)
    streams = []
    for oid, data in objs.items():
        size = draw(st.integers(1, 64))
        streams.append([("p" if oid % 2 else "q", c) for c in chunks(oid, data, size)])
    seq: list[tuple[str, Chunk]] = []
    while any(streams):
        i = draw(st.sampled_from([k for k, s in enumerate(streams) if s]))
        seq.append(streams[i].pop(0))
    for _ in range(draw(st.integers(0, 4))):
        if not seq:
            break
        op = draw(st.sampled_from(["drop", "dup", "move", "field"]))
        i = draw(st.integers(0, len(seq) - 1))
        if op == "drop":
            seq.pop(i)
        elif op == "dup":
            seq.insert(draw(st.integers(i, len(seq))), seq[i])
        elif op == "move":
            seq.insert(draw(st.integers(0, len(seq) - 1)), seq.pop(i))
        else:
            port, c = seq[i]
            which = draw(st.sampled_from(["kind", "total", "offset"]))
            delta = draw(st.integers(1, 3))
            c = Chunk(c.kind + delta if which == "kind" else c.kind, c.object_id,
                      c.total + delta if which == "total" else c.total,
                      c.offset + delta if which == "offset" else c.offset, c.data)
            seq[i] = (port, c)
    return objs, seq


@settings(max_examples=300, deadline=None)
@given(mangled_streams(), st.integers(1, 3))
def test_never_yields_a_wrong_object(case: tuple[dict[int, bytes], list], partial: int) -> None:
    objs, seq = case
    r = Reassembler(max_object=400, max_partial=partial, max_total=1200)
    for port, c in seq:
        out = r.push(port, c)
        if out is not None:
            assert out == objs[c.object_id]
        assert r.held_bytes <= 1200


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["p", "q"]), st.binary(max_size=40)), max_size=60))
def test_any_payloads_never_crash_and_stay_bounded(items: list[tuple[str, bytes]]) -> None:
    r = Reassembler(max_object=64, max_partial=2, max_total=128)
    for port, payload in items:
        try:
            c = parse_chunk(payload)
        except ValueError:
            continue
        out = r.push(port, c)
        assert out is None or len(out) <= 64
        assert r.held_bytes <= 128
