"""A lineage (every job made from one imagine or import) as a tree the page can draw.

The whole lineage comes from one query on `root`; the tree is put together here, without
recursion, as a flat list that says where nested lists open and close, so a lineage
hundreds of presses deep renders in constant stack space.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

# Deeper than this, the tree stops indenting (a long chain of rerolls stays readable).
MAX_INDENT = 8


@dataclass(frozen=True)
class Node:
    job: Any
    depth: int
    # Markup decisions for the template: open a nested list before this item, or close
    # this many nested lists (and the previous item) first.
    opens: bool
    closes: range

    @property
    def indented(self) -> bool:
        return self.depth <= MAX_INDENT


def tree(jobs: list[Any]) -> tuple[list[Node], range]:
    """Nodes in depth-first order (children oldest first), and how many lists remain open
    after the last one. A job whose parent is not among `jobs` is drawn as a root."""
    present = {job.pk for job in jobs}
    children: dict[int | None, list[Any]] = defaultdict(list)
    for job in sorted(jobs, key=lambda j: (j.created_at, j.pk)):
        parent = job.parent_id if job.parent_id in present else None
        children[parent].append(job)
    nodes: list[Node] = []
    stack: list[tuple[Any, int]] = [(job, 0) for job in reversed(children[None])]
    previous = -1
    while stack:
        job, depth = stack.pop()
        nodes.append(
            Node(
                job=job,
                depth=depth,
                opens=depth > previous,
                closes=range(max(previous - depth, 0)),
            )
        )
        previous = depth
        stack.extend((child, depth + 1) for child in reversed(children[job.pk]))
    return nodes, range(max(previous, 0))
