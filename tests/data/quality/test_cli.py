"""bubbles validate (contracts against the graph, before any data is read) and bubbles quarantine ls | show | replay."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from click.testing import CliRunner

from bubbles.cli.main import _register, cli

_register()

SCRIPT = """\
import bubbles
from bubbles import Column, Contract

orders = Contract("orders", columns=[
    Column("order_id", "bigint", primary_key=True),
    Column("amount", "decimal(12,2)", min=0),
    Column("customer_id", foreign_key="customers.customer_id"),
    Column("code", regex="{regex}"),
])

@bubbles.produces("order_id", "amt", "customer_id", "code")
def extract():
    raise AssertionError("validate must not read data")

@bubbles.produces("customer_id")
def customers():
    raise AssertionError("validate must not read data")

wf = bubbles.Workflow("orders")
raw = wf.add_task(extract)
wf.add_task(bubbles.check(orders), requires={{"data": raw{customers}}})
{more}
"""


def _script(tmp_path: Path, *, regex: str = "^[A-Z]+$", customers: bool = True, more: str = "") -> str:
    path = tmp_path / "etl.py"
    path.write_text(SCRIPT.format(regex=regex, customers=', "customers": wf.add_task(customers)' if customers else "",
                                  more=more))
    return str(path)


def test_validate_finds_contract_problems_before_reading_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["validate", _script(tmp_path, regex="(unclosed", customers=False)])
    assert result.exit_code == 1
    err = result.output
    assert "the regex '(unclosed' does not compile" in err
    assert "a rule names column 'amount', which the step upstream, 'extract', does not produce" in err
    assert "Did you mean 'amt'?" in err
    assert "points at table 'customers', which the task is not given" in err


def test_validate_passes_a_sound_graph_and_checks_yaml_contracts(tmp_path: Path) -> None:
    fixed = _script(tmp_path).replace('"order_id", "amt"', '"order_id", "amount"')
    Path(fixed).write_text(Path(fixed).read_text().replace('"order_id", "amt"', '"order_id", "amount"'))
    result = CliRunner().invoke(cli, ["validate", fixed])
    assert result.exit_code == 0, result.output
    assert "ok: wf (orders): 3 tasks" in result.output
    good = tmp_path / "c.yaml"
    good.write_text("contract: c\ncolumns:\n  a: {type: bigint, regex: '^[0-9]+$'}\n")
    assert CliRunner().invoke(cli, ["validate", str(good)]).output.startswith("ok: contract c")
    bad = tmp_path / "b.yaml"
    bad.write_text("contract: c\ncolumns:\n  a: {tipe: bigint}\n")
    out = CliRunner().invoke(cli, ["validate", str(bad)])
    assert out.exit_code == 1 and f"{bad}, line 3, key 'tipe'" in out.output and "Did you mean 'type'" in out.output


def test_quarantine_ls_show_and_replay(tmp_path: Path) -> None:
    src = tmp_path / "people.csv"
    src.write_text("id,email,age\n1,ann@example.com,30\n2,bob@example.com,-4\nbroken line,x\n3,cy@example.com,5\n")
    sink = tmp_path / "q"
    script = tmp_path / "job.py"
    script.write_text(
        "import bubbles\nfrom bubbles import Column, Contract\n"
        "c = Contract('people', columns=[Column('email', pii=True, mask='email'), Column('age', min=0)])\n"
        "wf = bubbles.Workflow('people')\n"
        f"raw = wf.add_task(lambda: bubbles.read_csv({str(src)!r}, on_bad_lines='quarantine', quarantine={str(sink)!r}),"
        " name='extract')\n"
        f"wf.add_task(bubbles.check(c, quarantine={str(sink)!r}), requires=[raw])\n"
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["run", str(script)]).exit_code == 0
    ls = runner.invoke(cli, ["quarantine", "ls"])
    assert ls.exit_code == 0 and f"{sink}  [parquet]  2 rows in 2 appends (bad lines, people)" in ls.output
    show = runner.invoke(cli, ["quarantine", "show", str(sink)])
    assert show.exit_code == 0, show.output
    assert "line 4  [bad_line]" in show.output and "raw:    'broken line,x'" in show.output
    assert "[age.range]" in show.output and "bob@example.com" not in show.output and '"email": "***"' in show.output
    lines = runner.invoke(cli, ["quarantine", "show", str(sink), "--json"]).output.splitlines()
    assert [json.loads(x)["_rules"] for x in lines] == ["bad_line", "age.range"]
    contract = tmp_path / "loose.yaml"
    contract.write_text("contract: people\ncolumns:\n  age: {min: -10}\n")
    out = tmp_path / "fixed.parquet"
    replayed = runner.invoke(cli, ["quarantine", "replay", str(sink), "--to", str(out), "--contract", str(contract)])
    assert replayed.exit_code == 0, replayed.output
    assert "2 rows from 2 parts: 1 written to" in replayed.output and "1 kept in quarantine" in replayed.output
    assert pq.read_table(out).column("email").to_pylist() == ["bob@example.com"]
    missing = runner.invoke(cli, ["quarantine", "show", str(tmp_path / "nothing-here")])
    assert missing.exit_code == 2 and "No quarantine at" in missing.output


def test_check_graph_names_reference_columns_and_accepts_undeclared_steps() -> None:
    import bubbles
    from bubbles import Column, Contract
    from bubbles.data.quality import check_graph

    c = Contract("orders", columns=[Column("customer_id", foreign_key="customers.id")])

    @bubbles.produces("customer_id")
    def orders() -> None: ...

    @bubbles.produces("customer_no")
    def customers() -> None: ...

    def unknown() -> None: ...

    wf = bubbles.Workflow("g")
    o, k = wf.add_task(orders), wf.add_task(customers)
    wf.add_task(bubbles.check(c), requires={"data": o, "customers": k})
    (problem,) = check_graph(wf.validate())
    assert "the foreign key to customers.id names a column that 'customers' does not produce" in problem
    free = bubbles.Workflow("free")  # steps that declare nothing: only the contract itself is checked
    u = free.add_task(unknown)
    free.add_task(bubbles.check(c, references={"customers": "customers.parquet"}), requires=[u])
    assert check_graph(free.validate()) == []


def test_a_sink_is_found_by_its_name_in_the_run_store(tmp_path: Path) -> None:
    import pyarrow as pa

    import bubbles
    from bubbles import Column, Contract

    wf = bubbles.Workflow("named")
    raw = wf.add_task(lambda: pa.table({"v": [1, -1]}), name="extract")
    levels = Contract("levels", columns=[Column("v", min=0)])
    wf.add_task(bubbles.check(levels, quarantine=str(tmp_path / "elsewhere" / "levels")), requires=[raw])
    wf.run()
    show = CliRunner().invoke(cli, ["quarantine", "show", "levels"])
    assert show.exit_code == 0, show.output
    assert show.output.startswith(f"1 rows in {tmp_path / 'elsewhere' / 'levels'}") and "[v.range]" in show.output
