"""Log followers, positions, the consumer loop and group commit, on the in-memory and SQLite stores."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any
from uuid import uuid4

import pytest
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError

from contracts.envelope import CloudEvent
from huhang.eventstore import ServiceApplication
from huhang.groupcommit import GroupCommitter
from huhang.settings import Settings
from huhang.storage import read_model_engine
from huhang.streams import Consumer, MergedSource, NotificationLogSource, Positions, drain


class Note(Aggregate):
    @event("Written")
    def __init__(self, text: str) -> None:
        self.text = text

    @event("Amended")
    def amend(self, text: str) -> None:
        self.text = text


class NotesApplication(ServiceApplication):
    pass


class Recorder:
    """A handler that remembers the (originator, version) of what it was given."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def handle(self, events: Sequence[Any]) -> None:
        self.seen.extend(events)


def as_items(domain_event: Any) -> Sequence[CloudEvent]:
    return [(domain_event.originator_id, domain_event.originator_version)]  # type: ignore[list-item]


@pytest.fixture
def settings(tmp_path: Any) -> Settings:
    return Settings(storage="sqlite", data_dir=tmp_path)


@pytest.fixture
def app(settings: Settings) -> NotesApplication:
    return NotesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})


@pytest.fixture
def positions(settings: Settings) -> Positions:
    return Positions(read_model_engine(settings, "notes"))


def test_a_follower_resumes_after_its_last_committed_position(app: NotesApplication, positions: Positions) -> None:
    app.save(Note("a"))
    first = Recorder()
    assert drain(Consumer("c", NotificationLogSource("f", app, as_items, positions), first)) == 1
    app.save(Note("b"))
    second = Recorder()
    assert drain(Consumer("c", NotificationLogSource("f", app, as_items, positions), second)) == 1
    assert first.seen[0] != second.seen[0]


def test_an_uncommitted_batch_comes_again_after_rewind(app: NotesApplication, positions: Positions) -> None:
    app.save(Note("a"))
    source = NotificationLogSource("f", app, as_items, positions)
    batch = source.poll(0.1)
    assert batch is not None
    source.rewind()
    again = source.poll(0.1)
    assert again is not None
    assert list(again.events) == list(batch.events)
    again.commit()
    assert source.poll(0.05) is None


def test_a_failing_handler_does_not_advance_the_position(app: NotesApplication, positions: Positions) -> None:
    class Failing:
        def handle(self, events: Sequence[Any]) -> None:
            raise RuntimeError("down")

    app.save(Note("a"))
    stop = threading.Event()
    consumer = Consumer("c", NotificationLogSource("f", app, as_items, positions), Failing(), poll_timeout_s=0.05)
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    stop.wait(0.3)
    stop.set()
    thread.join(5)
    assert positions.get("f") == 0
    recorder = Recorder()
    assert drain(Consumer("c", NotificationLogSource("f", app, as_items, positions), recorder)) == 1


def test_a_save_wakes_a_waiting_follower_at_once(app: NotesApplication, positions: Positions) -> None:
    source = NotificationLogSource("f", app, as_items, positions, interval_s=30)
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(source.poll(10)))
    thread.start()
    app.save(Note("a"))
    thread.join(2)
    assert not thread.is_alive()
    assert result[0] is not None


def test_a_merged_source_reads_every_log(positions: Positions) -> None:
    one = NotesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    two = NotesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    one.save(Note("a"))
    two.save(Note("b"), Note("c"))
    merged = MergedSource(
        [
            NotificationLogSource("m<-1", one, as_items, positions),
            NotificationLogSource("m<-2", two, as_items, positions),
        ]
    )
    recorder = Recorder()
    assert drain(Consumer("m", merged, recorder)) == 3


def test_group_commit_saves_concurrent_requests(app: NotesApplication) -> None:
    committer = GroupCommitter(app)
    notes = [Note(str(i)) for i in range(50)]
    threads = [threading.Thread(target=committer.save, args=(n,)) for n in notes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert app.recorder.max_notification_id() == 50
    assert {app.repository.get(n.id).text for n in notes} == {str(i) for i in range(50)}


def test_a_conflict_in_a_group_fails_only_the_request_that_conflicts(app: NotesApplication) -> None:
    note = Note("a")
    app.save(note)
    stale: Note = app.repository.get(note.id)
    fresh: Note = app.repository.get(note.id)
    fresh.amend("b")
    app.save(fresh)
    stale.amend("c")  # written against version 1: conflicts
    other = Note("d")
    conflicting: Future[None] = Future()
    innocent: Future[None] = Future()

    GroupCommitter(app)._commit([(list(stale.collect_events()), conflicting), (list(other.collect_events()), innocent)])

    assert isinstance(conflicting.exception(), IntegrityError)
    assert innocent.exception() is None
    assert app.repository.get(other.id).text == "d"
    assert app.repository.get(note.id).text == "b"


def test_positions_are_durable_across_engines(settings: Settings) -> None:
    Positions(read_model_engine(settings, "notes")).save("x", 41)
    assert Positions(read_model_engine(settings, "notes")).get("x") == 41
    assert Positions(read_model_engine(settings, "notes")).get("never") == 0


def test_unique_names_keep_followers_apart(app: NotesApplication, positions: Positions) -> None:
    app.save(Note(str(uuid4())))
    drain(Consumer("a", NotificationLogSource("a", app, as_items, positions), Recorder()))
    recorder = Recorder()
    assert drain(Consumer("b", NotificationLogSource("b", app, as_items, positions), recorder)) == 1


class CountingMapping:
    """The service's mapping, counting how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, domain_event: Any) -> Sequence[CloudEvent]:
        self.calls += 1
        return as_items(domain_event)


def test_followers_of_one_log_share_the_mapping_of_each_notification(
    app: NotesApplication, settings: Settings
) -> None:
    positions = Positions(read_model_engine(settings, "notes"))
    mapping = CountingMapping()
    notes = [Note(text=f"note {i}") for i in range(5)]
    app.save(*notes)
    followers = [NotificationLogSource(f"f{i}", app, mapping, positions) for i in range(3)]
    batches = [f.poll(0.1) for f in followers]

    assert all(b is not None and len(b.events) == 5 for b in batches)
    assert mapping.calls == 5  # not 15: mapped once, read by three followers
    assert [b.events for b in batches if b] == [batches[0].events] * 3  # type: ignore[union-attr]


def test_a_follower_that_keeps_up_reads_at_most_once_per_window(app: NotesApplication, settings: Settings) -> None:
    positions = Positions(read_model_engine(settings, "notes"))
    source = NotificationLogSource("paced", app, as_items, positions, window_s=0.2)
    reads = 0
    select = source._select

    def counting_select() -> Sequence[Any]:
        nonlocal reads
        reads += 1
        return select()

    source._select = counting_select  # type: ignore[method-assign]
    stop = threading.Event()

    def write() -> None:  # a save every 10 ms for 0.5 s
        for i in range(50):
            app.save(Note(text=f"note {i}"))
            stop.wait(0.01)

    writer = threading.Thread(target=write)
    writer.start()
    events = 0
    while writer.is_alive() or events < 50:
        batch = source.poll(0.5)
        if batch is None:
            break
        events += len(batch.events)
        batch.commit()
    writer.join()

    assert events == 50  # nothing lost or repeated
    assert reads <= 6  # about 0.5 s / 0.2 s windows, where an unpaced follower reads once per save (~50)


@pytest.mark.parametrize("seed", range(5))
def test_followers_reading_through_the_shared_log_tail_see_every_notification_once_in_order(
    seed: int, settings: Settings
) -> None:
    import random

    rng = random.Random(seed)
    app = NotesApplication({"PERSISTENCE_MODULE": "eventsourcing.popo"})
    app._tail.capacity = 7  # small, so that the stretch is trimmed and replaced often
    positions = Positions(read_model_engine(settings, f"notes{seed}"))
    followers = [
        NotificationLogSource(f"f{i}", app, as_items, positions, batch_size=rng.choice([1, 3, 50])) for i in range(3)
    ]
    seen: list[list[Any]] = [[] for _ in followers]
    saved: list[Any] = []
    for _ in range(300):
        if rng.random() < 0.4:
            notes = [Note(text="n") for _ in range(rng.randint(1, 4))]
            app.save(*notes)
            saved.extend((n.id, 1) for n in notes)
        else:
            i = rng.randrange(len(followers))
            batch = followers[i].poll(0)
            if batch is not None:
                seen[i].extend(batch.events)
                batch.commit()
    for i, follower in enumerate(followers):
        while (batch := follower.poll(0)) is not None:
            seen[i].extend(batch.events)
            batch.commit()
        assert seen[i] == saved
