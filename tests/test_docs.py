"""The docs' shape: users' guide and generated reports apart, every report indexed, every relative link alive."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def test_docs_hold_only_the_guide_the_reports_and_images():
    assert sorted(p.name for p in DOCS.iterdir()) == ["guide", "img", "reports"]


def test_every_report_is_in_the_index_with_its_date():
    index = (DOCS / "reports" / "README.md").read_text(encoding="utf-8")
    reports = [p for p in (DOCS / "reports").rglob("*.md") if p.name != "README.md"]
    assert len(reports) >= 5
    for report in reports:
        rel = report.relative_to(DOCS / "reports").as_posix()
        rows = [line for line in index.splitlines() if line.startswith(f"| [{rel}]({rel})")]
        assert rows, f"docs/reports/README.md does not index {rel}"
        assert re.search(r"\| 20\d\d-\d\d-\d\d \|", rows[0]), f"no date for {rel} in docs/reports/README.md"


def test_every_relative_link_in_the_docs_and_the_readme_resolves():
    broken = []
    for page in [REPO / "README.md", *DOCS.rglob("*.md")]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken
