"""Duplicate clusters by union-find, and the deterministic choice of the face each one keeps.

Nodes are the crops; exact-duplicate groups (same decoded pixels) are unioned first, then
every near pair. The kept member is decided by a total order, so the same inputs always
keep the same face whatever order they arrived in:
  keep = "largest":  largest source face, then sharpest, then smallest crop id;
  keep = "sharpest": sharpest, then largest source face, then smallest crop id.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> bool:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return False
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]
        return True


@dataclasses.dataclass(frozen=True)
class Member:
    id: str
    face_area: int
    sharpness: float


@dataclasses.dataclass
class Cluster:
    cluster_id: str  # stable: derived from the sorted member ids
    kept: str
    members: list[str]  # kept first, then in keep order
    why: str  # one line for the report: why `kept` won


def keep_order(member: Member, policy: str) -> tuple:
    if policy == "sharpest":
        return (-member.sharpness, -member.face_area, member.id)
    return (-member.face_area, -member.sharpness, member.id)


def explain(first: Member, second: Member, policy: str) -> str:
    """Which criterion separated the kept face from the runner-up."""
    size = f"larger source face ({first.face_area} vs {second.face_area} px²)"
    sharp = f"sharper (Laplacian variance {first.sharpness:.0f} vs {second.sharpness:.0f})"
    criteria = [
        ("size", first.face_area != second.face_area, size),
        ("sharp", round(first.sharpness, 6) != round(second.sharpness, 6), sharp),
    ]
    if policy == "sharpest":
        criteria.reverse()
    for _, differs, text in criteria:
        if differs:
            return text
    return "same size and sharpness: smallest crop id"


def cluster_id(member_ids: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(member_ids)).encode()).hexdigest()[:12]


def build_clusters(members: list[Member], pairs: Iterable[tuple[int, int]], policy: str) -> list[Cluster]:
    """Group `members` (by index) along `pairs` and pick each group's keeper; sorted by kept id."""
    uf = UnionFind(len(members))
    for a, b in pairs:
        uf.union(a, b)
    groups: dict[int, list[Member]] = {}
    for index, member in enumerate(members):
        groups.setdefault(uf.find(index), []).append(member)
    clusters = []
    for group in groups.values():
        ranked = sorted(group, key=lambda m: keep_order(m, policy))
        why = explain(ranked[0], ranked[1], policy) if len(ranked) > 1 else "unique"
        clusters.append(
            Cluster(cluster_id([m.id for m in ranked]), ranked[0].id, [m.id for m in ranked], why)
        )
    clusters.sort(key=lambda c: c.kept)
    return clusters


SPLIT_WHY = "a person marked it not a duplicate (dedup/decisions.jsonl)"
KEEP_WHY = "a person chose to keep it (dedup/decisions.jsonl)"


def apply_decisions(clusters: list[Cluster], decided: dict[str, str]) -> list[Cluster]:
    """A person's word over the hashes: `decided` is crop id -> "split" | "keep" (dedup/decisions.jsonl).

    A split member leaves its cluster and stands alone (the rest stay together: it was the
    person's "not the same face" about that member only). A kept member becomes its cluster's
    face, the others following in the order the policy ranked them; if a person marked two
    members of one cluster, the policy's order picks between them. Applying the decisions to
    clusters they were already applied to changes nothing, which lets the review app show
    the next run's result from the last run's clusters.
    """
    if not decided:
        return clusters
    out: list[Cluster] = []
    for cluster in clusters:
        split = [m for m in cluster.members if decided.get(m) == "split"] if len(cluster.members) > 1 else []
        out += [Cluster(cluster_id([m]), m, [m], SPLIT_WHY) for m in split]
        rest = [m for m in cluster.members if m not in split]
        if not rest:
            continue
        chosen = next((m for m in rest if decided.get(m) == "keep"), rest[0]) if len(rest) > 1 else rest[0]
        members = [chosen] + [m for m in rest if m != chosen]
        if chosen != cluster.kept and decided.get(chosen) == "keep":
            why = KEEP_WHY
        elif chosen != cluster.kept:
            why = "next in keep order (a person split the face that was kept out of this cluster)"
        elif len(rest) == 1:
            why = cluster.why if len(cluster.members) == 1 else "unique"
        else:
            why = cluster.why
        if members == cluster.members:
            out.append(cluster)
        else:
            out.append(Cluster(cluster_id(members), chosen, members, why))
    out.sort(key=lambda c: c.kept)
    return out
