"""Validation before running: cycles, unknown and duplicate tasks, signatures."""

from __future__ import annotations

import pickle

import pytest

from bubbles import CycleError, DuplicateTaskError, SignatureError, UnknownTaskError, Workflow
from bubbles.engine.graph import Graph, Node, Ref

from . import tasks as t


def test_cycle_is_named() -> None:
    wf = Workflow("loop")
    wf.add_task(t.double, requires=["c"], name="a")
    wf.add_task(t.double, requires=["a"], name="b")
    wf.add_task(t.double, requires=["b"], name="c")
    with pytest.raises(CycleError) as info:
        wf.run()
    msg = str(info.value)
    assert "cycle" in msg and "'loop'" in msg
    cycle = info.value.cycle
    assert cycle[0] == cycle[-1] and set(cycle) == {"a", "b", "c"}
    assert " -> ".join(cycle) in msg


def test_self_dependency_is_a_cycle() -> None:
    g = Graph("g")
    g.add(Node("a", None, (Ref("a"),), kind="gather"))
    assert g.find_cycle() == ["a", "a"]


def test_unknown_dependency_suggests_the_close_name() -> None:
    wf = Workflow("typo")
    wf.add_task(t.one, name="extract")
    wf.add_task(t.double, requires=["extrct"], name="load")
    with pytest.raises(UnknownTaskError, match=r"'load'.*'extrct'.*Did you mean 'extract'\?"):
        wf.validate()


def test_duplicate_names_are_rejected() -> None:
    wf = Workflow("dup")
    wf.add_task(t.one)
    wf.add_task(t.one)
    with pytest.raises(DuplicateTaskError, match=r"two tasks named .one.*name="):
        wf.validate()


def test_signature_mismatch_explains_requires_vs_after() -> None:
    wf = Workflow("sig")
    a = wf.add_task(t.one, name="a")
    b = wf.add_task(t.two, name="b")
    wf.add_task(t.double, requires=[a, b], name="load")
    with pytest.raises(SignatureError) as info:
        wf.validate()
    msg = str(info.value)
    assert "'load'" in msg and "double(x)" in msg and "after=" in msg
    assert info.value.task == "load"


def test_validation_happens_before_anything_runs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "ran"
    wf = Workflow("early")
    wf.add_task(t.append_line, kwargs={"path": str(marker), "text": "x"}, name="side_effect")
    wf.add_task(t.double, requires=["missing"], name="broken")
    with pytest.raises(UnknownTaskError):
        wf.run()
    assert not marker.exists()


def test_order_respects_dependencies() -> None:
    wf = Workflow("order")
    for i in range(50):
        wf.add_task(t.noop, after=[f"n{i - 1}"] if i else [], name=f"n{i}")
    graph = wf.validate()
    assert graph.order() == [f"n{i}" for i in range(50)]


def test_deep_chain_validates_without_recursion_limit() -> None:
    wf = Workflow("deep")
    for i in range(5000):
        wf.add_task(t.noop, after=[f"n{i - 1}"] if i else [], name=f"n{i}")
    assert len(wf.validate()) == 5000


def test_graph_errors_pickle_with_their_fields() -> None:
    err = CycleError("cycle!", cycle=["a", "b", "a"], workflow="w")
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is CycleError and back.cycle == ["a", "b", "a"] and str(back) == "cycle!"
