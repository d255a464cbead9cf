"""What the pack remembers between gates: a stack reading per AnalyzeStack's resource list, a container's labels per
resource. Remembered answers are the same as fresh ones, and a caller cannot change what the next one gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from policies.model import docker_labels
from policies.per_stack import per_stack


def test_a_stack_reading_is_made_once_per_resource_list() -> None:
    calls: list[int] = []

    @per_stack
    def reading(resources: Sequence[Any]) -> tuple[Any, ...]:
        calls.append(len(resources))
        return tuple(resources)

    first = [1, 2]
    assert reading(first) == (1, 2) and reading(first) is reading(first)
    assert calls == [2], "the same list (one AnalyzeStack's, shared by its gates): read once"
    assert reading([1, 2, 3]) == (1, 2, 3) and calls == [2, 3], "another list: read afresh"
    assert reading([1, 2]) == (1, 2) and calls == [2, 3, 2], "an equal but new list is another analysis: read afresh"


def test_container_labels_are_read_once_and_handed_out_as_copies() -> None:
    props = {"labels": [{"label": "netopt.role", "value": "gateway"}, {"label": "netopt.workload", "value": "web"}]}
    labels = docker_labels(props)
    assert labels == {"netopt.role": "gateway", "netopt.workload": "web"}
    labels["netopt.role"] = "changed by a caller"
    assert docker_labels(props)["netopt.role"] == "gateway"
    assert docker_labels({"labels": []}) == {} and docker_labels({}) == {}
