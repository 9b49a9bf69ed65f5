"""The decision logs as the app and the stages share them: batches whole or not at all, `clear`,
reading only the tail, and dedup's reading of split/keep (the same function the page uses)."""

from __future__ import annotations

import json

import pytest

from dedup.clusters import KEEP_WHY, SPLIT_WHY, Cluster, apply_decisions, cluster_id
from pipeline import decisions
from pipeline.layout import Layout


def test_a_batch_is_recorded_whole_or_not_at_all(tmp_path):
    with pytest.raises(decisions.BadDecision):
        decisions.record_overrides(
            tmp_path, [("a_1_1_1_1", "promote", None), ("b_1_1_1_1", "demote", "no/slash")]
        )
    assert not Layout(tmp_path).overrides_log.exists()
    recorded = decisions.record_overrides(
        tmp_path, [("a_1_1_1_1", "promote", None), ("b_1_1_1_1", "demote", None)]
    )
    assert [(d.id, d.action, d.reason) for d in recorded] == [
        ("a_1_1_1_1", "promote", None),
        ("b_1_1_1_1", "demote", "manual"),
    ]


def test_clear_withdraws_a_decision_for_every_reader(tmp_path):
    decisions.record_override(tmp_path, "a_1_1_1_1", "demote", "blurry")
    decisions.record_override(tmp_path, "a_1_1_1_1", "clear")
    decisions.record_dedup_decision(tmp_path, "b_1_1_1_1", "split")
    decisions.record_dedup_decision(tmp_path, "b_1_1_1_1", "clear")
    assert decisions.read_overrides(tmp_path) == {} and decisions.read_dedup_decisions(tmp_path) == {}
    assert len(Layout(tmp_path).overrides_log.read_text().splitlines()) == 2  # appended, never rewritten


def test_read_new_returns_only_the_tail_and_waits_for_a_torn_line(tmp_path):
    log = Layout(tmp_path).overrides_log
    decisions.record_override(tmp_path, "a_1_1_1_1", "promote")
    first, offset = decisions.read_new(log, decisions.OVERRIDE_ACTIONS)
    assert list(first) == ["a_1_1_1_1"] and offset == log.stat().st_size
    with log.open("a") as fh:
        fh.write('{"id": "b_1_1_1_1", "action": "promote"')  # a writer half-way through its line
    assert decisions.read_new(log, decisions.OVERRIDE_ACTIONS, offset) == ({}, offset)
    decisions.record_override(tmp_path, "c_1_1_1_1", "demote")  # finishes the torn line first
    new, _ = decisions.read_new(log, decisions.OVERRIDE_ACTIONS, offset)
    assert list(new) == ["c_1_1_1_1"]
    assert [json.loads(line)["id"] for line in log.read_text().splitlines()[-1:]] == ["c_1_1_1_1"]


def cluster(*members: str) -> Cluster:
    return Cluster(cluster_id(members), members[0], list(members), "larger source face")


def test_split_leaves_the_cluster_and_keep_changes_the_face():
    out = apply_decisions([cluster("a", "b", "c")], {"b": "split"})
    assert [(c.kept, c.members) for c in out] == [("a", ["a", "c"]), ("b", ["b"])]
    assert out[1].why == SPLIT_WHY and out[0].cluster_id == cluster_id(["a", "c"])
    out = apply_decisions([cluster("a", "b", "c")], {"c": "keep"})
    assert [(c.kept, c.members, c.why) for c in out] == [("c", ["c", "a", "b"], KEEP_WHY)]
    out = apply_decisions([cluster("a", "b")], {"a": "split"})  # the kept one split: the other stands alone
    assert sorted(c.kept for c in out) == ["a", "b"] and all(len(c.members) == 1 for c in out)


def test_applying_the_decisions_twice_changes_nothing():
    decided = {"b": "split", "d": "keep"}
    once = apply_decisions([cluster("a", "b", "c", "d")], decided)
    assert apply_decisions(once, decided) == once
