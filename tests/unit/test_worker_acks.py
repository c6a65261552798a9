"""A worker acks a job only after the broker confirmed the outcome published for it."""
from hypothesis import given, strategies as st

from taskforce.worker.acks import PendingAcks


# A run: each step either finishes a job (its outcome is publish number seq+1), or the broker
# confirms every publish up to some number not beyond what was published.
steps = st.lists(st.one_of(st.just(("finish", 0)), st.tuples(st.just("confirm"), st.integers(0, 50))),
                 max_size=60)


@given(steps)
def test_no_ack_before_its_outcome_is_confirmed_and_none_is_forgotten(run):
    acks, seq, confirmed, outcome_of, acked = PendingAcks(), 0, 0, {}, []
    for kind, n in run:
        if kind == "finish":
            seq += 1
            tag = f"d{seq}"
            outcome_of[tag] = seq
            acks.add(tag, seq, ("job", seq))
        else:
            confirmed = max(confirmed, min(n, seq))
        for tag, key in acks.ready(confirmed):
            assert outcome_of[tag] <= confirmed          # never acked ahead of its confirm
            assert key == ("job", outcome_of[tag])
            acked.append(tag)
    assert len(acked) == len(set(acked))                   # each delivery acked once
    assert len(acks) == seq - len(acked)
    final = acks.ready(seq)                                 # all confirmed: everything goes
    assert sorted(acked + [t for t, _ in final], key=lambda t: int(t[1:])) == [f"d{i}" for i in range(1, seq + 1)]
    assert len(acks) == 0


def test_a_delivery_with_nothing_to_wait_for_is_ready_at_once_and_order_is_kept():
    acks = PendingAcks()
    acks.add("a", 5, ("a", 1))
    acks.add("b", 0)                    # a second delivery of a reported attempt
    acks.add("c", 3, ("c", 1))
    assert acks.ready(0) == [("b", None)]
    assert acks.ready(4) == [("c", ("c", 1))]
    assert acks.ready(4) == []
    assert acks.ready(5) == [("a", ("a", 1))]
