"""``bubbles`` the decorator also carries the package's public names: ``@bubbles`` and ``bubbles.Pipeline()``."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import bubbles as package
import pybubbles


@pytest.mark.parametrize("home", [package, pybubbles], ids=["bubbles", "pybubbles"])
def test_the_decorator_carries_every_public_name(home: Any) -> None:
    decorator = home.bubbles
    assert decorator is package.bubbles is package.flow  # one decorator, two names
    for name in package.__all__:
        assert getattr(decorator, name) is getattr(package, name), name
    assert decorator.Pipeline is package.Pipeline and decorator.Workflow is package.Workflow
    assert decorator.read_csv is package.read_csv and decorator.__version__ == package.__version__


@pytest.mark.parametrize("home", [package, pybubbles], ids=["bubbles", "pybubbles"])
def test_the_decorator_still_marks_flows_bare_and_with_options(home: Any) -> None:
    bubbles = home.bubbles

    @bubbles.task
    def square(x: int) -> int:
        return x * x

    @bubbles
    def total(n: int) -> int:
        return sum(f.result() for f in [square(i) for i in range(n)])

    @bubbles(name="named", executor="serial")
    def named() -> int:
        return square(3).result()

    assert isinstance(total, package.FlowFunction) and total(4) == 14
    assert named.name == "named" and named() == 9


def test_the_names_work_as_the_package_s_do() -> None:
    from pybubbles import bubbles

    wf = bubbles.Workflow("alias")
    wf.add_task(lambda: [1, 2, 3], name="rows")
    assert wf.run().tasks["rows"].result == [1, 2, 3]


def test_a_bad_target_is_still_refused_clearly() -> None:
    with pytest.raises(package.ConfigError, match="@bubbles decorates functions"):
        package.bubbles(42)


def test_it_pickles_as_a_reference() -> None:
    assert pickle.loads(pickle.dumps(package.bubbles)) is package.bubbles  # a task using it runs in a worker process
