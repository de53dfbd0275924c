"""Names that say what they hold (issue 13): the module and class names that once repeated
across folders, each for something else, do not come back."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "smsc_simulator")


def _modules() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_no_two_modules_named_directory_config_or_metrics() -> None:
    """Two ``directory.py`` (campaigns, inbound), two ``config.py`` (front, links, beside the
    gateway's) and two ``metrics.py`` (the gateway's meters, the front's families) were
    renamed to what each holds: ``campaign_directory`` (the port the MO path asks),
    ``store_directory`` (the campaigns' store-backed one), ``gateway/config/`` by section,
    ``front/metric_families``."""
    names = Counter(p.name for p in _modules())
    for name in ("directory.py", "config.py", "metrics.py"):
        assert names[name] <= 1, [str(p.relative_to(ROOT)) for p in _modules() if p.name == name]


def test_no_two_reassemblers_share_a_name() -> None:
    """The carriers' long MOs (``MoReassembler``) and the upstream ESMEs' long submits
    (``SubmitReassembler``) are joined by different rules, under different names."""
    classes: Counter[str] = Counter()
    for path in _modules():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes.update(n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef))
    reassemblers = {name: n for name, n in classes.items() if name.endswith("Reassembler")}
    assert reassemblers == {"MoReassembler": 1, "SubmitReassembler": 1}


def test_the_front_module_of_upstream_submits_is_not_called_inbound() -> None:
    """``gateway/inbound/`` is the MO path; the front's module that turns upstream submit_sm
    into message text is ``front/submits``."""
    assert not (ROOT / "gateway" / "front" / "inbound.py").exists()
    assert (ROOT / "gateway" / "front" / "submits.py").exists()
