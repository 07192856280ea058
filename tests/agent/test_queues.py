import threading

import pytest

from edgeseg.agent.queues import Closed, DropOldestQueue


def test_full_queue_drops_the_oldest_and_counts():
    dropped = []
    q = DropOldestQueue(2, on_drop=dropped.append)
    for i in range(5):
        q.put(i)
    assert q.dropped == 3 and dropped == [0, 1, 2]
    assert [q.get(0), q.get(0)] == [3, 4]
    assert q.get(0.01) is None


def test_size_one_is_the_latest_frame_slot():
    q = DropOldestQueue(1)
    for i in range(100):
        q.put(i)
    assert len(q) == 1 and q.get(0) == 99 and q.dropped == 99


def test_close_wakes_a_blocked_consumer_and_drains_first():
    q = DropOldestQueue(3)
    q.put("a")
    q.close()
    assert q.get(1) == "a"
    with pytest.raises(Closed):
        q.get(1)
    q2 = DropOldestQueue(1)
    out = []

    def consume():
        try:
            q2.get(10)
        except Closed:
            out.append("closed")

    t = threading.Thread(target=consume)
    t.start()
    q2.close()
    t.join(2)
    assert out == ["closed"]


def test_size_zero_is_refused():
    with pytest.raises(ValueError):
        DropOldestQueue(0)


def test_on_put_sees_each_item_before_a_consumer_can():
    entered, dropped = [], []
    q = DropOldestQueue(2, on_drop=dropped.append,
                        on_put=lambda item: entered.append((item, len(q))))
    for i in range(4):
        q.put(i)
    assert entered == [(0, 0), (1, 1), (2, 2), (3, 2)]  # before it was queued
    assert dropped == [0, 1]
    assert q.take_all() == [2, 3] and len(q) == 0


def test_put_back_returns_an_item_to_the_head_or_drops_it_when_full():
    dropped = []
    q = DropOldestQueue(2, on_drop=dropped.append)
    q.put("a")
    q.put("b")
    taken = q.get()
    q.put_back(taken)
    assert [q.get(), q.get()] == ["a", "b"]  # the oldest again, first out
    q.put("c")
    taken = q.get()
    q.put("d")
    q.put("e")  # full while "c" was out
    q.put_back(taken)
    assert dropped == ["c"] and q.dropped == 1
    assert [q.get(), q.get()] == ["d", "e"]
