"""Merge laws of every CRDT, under hypothesis."""
from hypothesis import given, strategies as st

from taskforce.crdt import GCounter, JobStatus, LWWEntry, LWWMap
from taskforce.model import Phase

statuses = st.builds(JobStatus, st.integers(0, 3), st.integers(0, 5), st.sampled_from(list(Phase)))
counters = st.builds(GCounter, st.dictionaries(st.sampled_from("abcde"), st.integers(0, 50)))
entries = st.builds(LWWEntry, st.integers(0, 5).map(float), st.sampled_from(["w1", "w2", "w3"]),
                    st.one_of(st.integers(0, 3), st.text(max_size=3)))
maps = st.builds(LWWMap, st.dictionaries(st.sampled_from("xyz"), entries))


@given(statuses, statuses)
def test_status_merge_commutes(a, b):
    assert a.merge(b) == b.merge(a)


@given(statuses, statuses, statuses)
def test_status_merge_associates(a, b, c):
    assert a.merge(b).merge(c) == a.merge(b.merge(c))


@given(statuses)
def test_status_merge_idempotent(a):
    assert a.merge(a) == a


@given(statuses, statuses)
def test_status_merge_is_an_upper_bound(a, b):
    m = a.merge(b)
    assert a <= m and b <= m


@given(st.integers(0, 3), st.integers(0, 5), st.sampled_from([Phase.SUCCEEDED, Phase.DEAD, Phase.CANCELLED]),
       st.integers(0, 9), st.sampled_from([Phase.PENDING, Phase.QUEUED, Phase.RUNNING, Phase.FAILED]))
def test_terminal_absorbs_any_later_attempt_of_its_generation(gen, attempt, terminal, later, phase):
    t = JobStatus(gen, attempt, terminal)
    assert t.merge(JobStatus(gen, later, phase)) == t


@given(st.lists(statuses, min_size=1, max_size=8), st.randoms())
def test_any_delivery_order_gives_the_same_status(events, rnd):
    def fold(evs):
        out = JobStatus()
        for e in evs:
            out = out.merge(e)
        return out
    shuffled = list(events) + list(events)   # duplicates too
    rnd.shuffle(shuffled)
    assert fold(events) == fold(shuffled)


def test_a_redelivered_started_cannot_undo_success():
    s = JobStatus(0, 1, Phase.SUCCEEDED)
    assert s.merge(JobStatus(0, 1, Phase.RUNNING)) == s


def test_operator_retry_generation_moves_past_dead():
    assert JobStatus(0, 3, Phase.DEAD).merge(JobStatus(1, 1, Phase.QUEUED)) == JobStatus(1, 1, Phase.QUEUED)


@given(counters, counters)
def test_gcounter_commutes(a, b):
    assert a.merge(b).counts == b.merge(a).counts


@given(counters, counters, counters)
def test_gcounter_associates(a, b, c):
    assert a.merge(b).merge(c).counts == a.merge(b.merge(c)).counts


@given(counters)
def test_gcounter_idempotent(a):
    assert a.merge(a).counts == {k: v for k, v in a.counts.items()}


@given(counters, counters)
def test_gcounter_value_never_shrinks(a, b):
    assert a.merge(b).value >= max(a.value, b.value)


def test_gcounter_refuses_to_shrink():
    import pytest
    with pytest.raises(ValueError):
        GCounter().incr("a", -1)


@given(maps, maps)
def test_lww_commutes(a, b):
    assert a.merge(b).entries == b.merge(a).entries


@given(maps, maps, maps)
def test_lww_associates(a, b, c):
    assert a.merge(b).merge(c).entries == a.merge(b.merge(c)).entries


@given(maps)
def test_lww_idempotent(a):
    assert a.merge(a).entries == a.entries


def test_lww_newest_heartbeat_wins():
    m = LWWMap()
    m.set("w1", {"in_flight": ["b"]}, 2.0, "w1")
    m.set("w1", {"in_flight": ["a"]}, 1.0, "w1")   # late, older heartbeat
    assert m.get("w1") == {"in_flight": ["b"]}
