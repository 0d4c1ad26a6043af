"""The gradient exchange's pieces, in this process: buffers, the weighted mean, the inbox."""
import threading
import time

import numpy as np
import pytest

from graphc.distributed.exchange import ExchangeAborted, Inbox, flatten, unflatten, weighted_mean
from graphc.distributed.sweep import _estimated_steps, _placement
from graphc.errors import GraphcError


@pytest.mark.parametrize("shapes", [[("a", (2, 3)), ("b", (3,))], [("s", ()), ("z", (0, 4)), ("w", (1, 1))]])
def test_flatten_then_unflatten_gives_back_every_array(shapes):
    rng = np.random.default_rng(0)
    arrays = {n: rng.normal(size=s) for n, s in shapes}
    buffer = flatten(arrays, [n for n, _ in shapes], np.float64)
    assert buffer.flags.c_contiguous and buffer.size == sum(a.size for a in arrays.values())
    back = unflatten(buffer, shapes)
    for name, value in arrays.items():
        assert back[name].shape == value.shape
        np.testing.assert_array_equal(back[name], value)


def test_weighted_mean_matches_the_row_weighted_average_in_worker_order():
    rng = np.random.default_rng(1)
    g = [rng.normal(size=5) for _ in range(3)]
    messages = {2: (7, 0.5, 3.0, g[2]), 0: (10, 1.0, 4.0, g[0]), 1: (0, 0.0, None, np.zeros(0)), 3: (3, 2.0, 1.0, g[1])}
    total, loss, correct, mean = weighted_mean(messages)
    assert total == 20
    assert loss == pytest.approx((10 * 1.0 + 7 * 0.5 + 3 * 2.0) / 20, rel=1e-15)
    assert correct == pytest.approx(10 * 4.0 + 7 * 3.0 + 3 * 1.0)
    expected = g[0] * (10 / 20) + g[2] * (7 / 20) + g[1] * (3 / 20)  # sender order 0, 2, 3: bit for bit
    np.testing.assert_array_equal(mean, expected)


def test_weighted_mean_of_one_shard_is_its_gradient():
    g = np.arange(4.0)
    total, loss, correct, mean = weighted_mean({0: (5, 0.25, 0.6, g), 1: (0, 0.0, None, np.zeros(0))})
    assert (total, loss, correct) == (5, 0.25, 3.0) and mean is g


def test_inbox_waits_for_every_sender_and_keys_by_step():
    inbox = Inbox()
    inbox.put(1, 2, "early")  # a fast peer's next step arrives first
    threading.Timer(0.05, inbox.put, (0, 2, "late")).start()
    inbox.put(0, 1, "one")
    assert inbox.take(0, [1, 2], timeout=10) == {1: "one", 2: "late"}
    assert inbox.take(1, [2], timeout=10) == {2: "early"}


def test_inbox_abort_wakes_a_waiting_worker():
    inbox = Inbox()
    threading.Timer(0.05, inbox.abort, ("worker tcp://x:1 failed",)).start()
    start = time.monotonic()
    with pytest.raises(ExchangeAborted, match=r"stopped at step 4: worker tcp://x:1 failed"):
        inbox.take(3, [1], timeout=30)
    assert time.monotonic() - start < 10


def test_inbox_names_a_silent_peer_after_its_timeout():
    with pytest.raises(GraphcError, match=r"no gradient from worker\(s\) \[1\] for step 1"):
        Inbox().take(0, [1], timeout=0.05)


@pytest.mark.parametrize("trial, expected", [({}, 10 * 4), ({"epochs": 3}, 3 * 4), ({"batch_size": 100}, 10),
                                             ({"batch_size": "big"}, 0)])
def test_sweep_orders_trials_by_their_step_count(trial, expected):
    assert _estimated_steps(trial, {"epochs": 10, "batch_size": 25}, 90) == expected


def test_sweep_places_longest_trials_first_on_the_least_loaded_worker():
    assert _placement([5, 5, 5, 5, 5, 5, 5, 5], ["a", "b"]) == [["a"], ["b"]] * 4  # 4 and 4, not 5 and 3
    assert _placement([1, 9, 4, 4], ["a", "b"]) == [["b"], ["a"], ["b"], ["b"]]  # 9 | 4 + 4 + 1
    assert _placement([0, 0, 0], ["a", "b"]) == [["a"], ["b"], ["a"]]  # unknown cost counts as 1
    assert _placement([3], []) == [None]
