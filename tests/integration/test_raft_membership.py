"""Raft membership changes with real orchestrator processes on one host: a group of 3 grows to
5 one node at a time through the raft-member CLI, loses one, and a member restarted with the
new peers comes back. Its own cluster (RabbitMQ and orchestrators only), since it changes the
group that the rest of the tier counts on."""
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .conftest import start_cluster, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def group(tmp_path_factory):
    c = start_cluster(tmp_path_factory, "raftgroup", orchestrators=3, gateways=0, workers=0)
    yield c
    c.down()


def statuses(c, idxs):
    return {i: c.orch_status(i) for i in idxs}


def agreed(c, idxs, members):
    """Every orchestrator in idxs lists exactly these members, all connected, and follows one
    leader that is among them and is the only one leading."""
    sts = statuses(c, idxs)
    if any(st is None for st in sts.values()):
        return False
    leaders = {st["leader"] for st in sts.values()}
    leading = [st["self"] for st in sts.values() if st["state"] == "leader"]
    return (all(st["members"] == sorted(members) and all(st["connected"].values()) for st in sts.values())
            and len(leaders) == 1 and leading == list(leaders) and leading[0] in members and sts)


def raft_member(c, cfg_index, *args, timeout=90):
    r = subprocess.run([sys.executable, "-m", "taskforce.cli", "raft-member", *args,
                        "--config", str(c.base / "etc" / f"orch{cfg_index + 1}.toml"),
                        "--orchestrators", ",".join(c.api_urls())],
                       capture_output=True, text=True, timeout=timeout)
    print(f"\n$ raft-member {' '.join(args)}  (rc {r.returncode})\n{r.stdout}{r.stderr}", end="")
    return r


def post(c, i, body, token=None):
    return httpx.post(c.api_urls()[i] + "/raft/members", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {token or c.internal}"})


def test_grow_to_five_one_at_a_time_remove_one_and_restart_a_member_with_the_new_peers(group):
    c = group
    t0 = time.time()
    lead = c.wait_leader()
    followers = [i for i in range(3) if i != lead]
    addr = c.raft_addrs

    # The internal API's refusals.
    assert post(c, lead, {"add": "127.0.0.1:1"}, token="wrong-token").status_code == 401
    r = post(c, followers[0], {"add": "127.0.0.1:1"})
    assert r.status_code == 409 and r.json()["reason"] == "not_leader" and r.json()["leader"] == addr[lead]
    assert post(c, lead, {"add": "127.0.0.1"}).status_code == 422
    assert post(c, lead, {"add": addr[followers[0]]}).json()["reason"] == "is_member"
    r = post(c, lead, {"remove": addr[lead]})
    assert r.status_code == 409 and r.json()["reason"] == "is_leader"

    # A 4th node, started with every member as a peer, waits outside the group until added,
    # past its first redials (1 s apart), and calls no election meanwhile.
    c.start_orch(c.new_orch(), addr[:3])
    addr = c.raft_addrs
    wait_for(lambda: c.orch_status(3), what="orch4's API")
    time.sleep(3.5)
    st4 = c.orch_status(3)
    assert st4["leader"] is None and st4["term"] == 0 and len(c.orch_status(lead)["members"]) == 3
    term = c.orch_status(lead)["term"]
    r = raft_member(c, 3, "add", addr[3])   # from the new node's host, as a playbook would
    assert r.returncode == 0 and "done: 4 members" in r.stdout
    wait_for(lambda: agreed(c, range(4), addr[:4]), timeout=20, what="4 members agreeing")
    print(f"leader's term {term} before the add, {c.orch_status(c.wait_leader())['term']} after")

    # A 5th, added before it starts: the change commits (4 of 5 hold it) but does not check out
    # until the node is up and caught up, and meanwhile another change is refused.
    c.new_orch()
    addr = c.raft_addrs
    lead = c.wait_leader()
    answers = {}
    adding = threading.Thread(target=lambda: answers.update(add=post(c, lead, {"add": addr[4]})))
    adding.start()
    wait_for(lambda: addr[4] in c.orch_status(lead)["members"], timeout=10, what="the 5th in effect")
    r = post(c, lead, {"remove": addr[3]})
    assert r.status_code == 409 and r.json()["reason"] == "pending", r.text
    c.start_orch(4, addr[:4])
    adding.join(60)
    assert answers["add"].status_code == 200, answers["add"].text
    assert answers["add"].json()["members"] == sorted(addr[:5])
    sts = wait_for(lambda: agreed(c, range(5), addr[:5]), timeout=20, what="5 members agreeing")
    t_five = time.time()

    # Commits go on, and every member applies them, the two new ones included.
    lead = c.wait_leader()
    before = sts[lead]["commit_idx"]
    wait_for(lambda: c.orch_status(lead)["commit_idx"] > before + 10, what="the leader committing")
    target = c.orch_status(lead)["commit_idx"]
    wait_for(lambda: all(st and st["last_applied"] >= target for st in statuses(c, range(5)).values()),
             what="every member applying the leader's commits")

    # Remove a follower that was in the first group, through the CLI on another member.
    gone = next(i for i in range(3) if i != lead)
    remover = lead
    r = raft_member(c, lead, "remove", addr[gone])
    assert r.returncode == 0 and "done: 4 members" in r.stdout
    rest = [i for i in range(5) if i != gone]
    rest_addrs = [addr[i] for i in rest]
    # The removed node still runs for a while; the others shut it out.
    wait_for(lambda: agreed(c, rest, rest_addrs), timeout=20, what="4 members agreeing")
    time.sleep(3)
    assert agreed(c, rest, rest_addrs)
    c.procs[f"orch{gone + 1}"].stop()

    # A member restarted with the new peers comes back cleanly: no drift, caught up.
    again = next(i for i in rest if i != c.wait_leader())
    c.start_orch(again, [a for a in rest_addrs if a != addr[again]])
    sts = wait_for(lambda: agreed(c, rest, rest_addrs), timeout=30, what="4 members agreeing after a restart")
    lead = c.wait_leader()
    target = sts[lead]["commit_idx"]
    wait_for(lambda: (c.orch_status(again) or {}).get("last_applied", 0) >= target, what="the restarted member caught up")
    log = (c.base / "logs" / f"orch{again + 1}.log").read_text()
    assert "Raft membership is not what" not in log.split("orchestrator stopping")[-1]
    assert f"raft membership: remove {addr[gone]} verified" in (c.base / "logs" / f"orch{remover + 1}.log").read_text()

    r = raft_member(c, again, "list")
    assert r.returncode == 0 and all(a in r.stdout for a in rest_addrs) and addr[gone] not in r.stdout
    print(f"grown to 5 in {t_five - t0:.1f}s, whole test {time.time() - t0:.1f}s")
