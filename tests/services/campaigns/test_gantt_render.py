"""The Gantt chart a person reads (issue 17, point 3): after a slip, late tasks (negative
slack) and conflicts are marked and in the legend, dependency arrows are drawn, names are whole
(wrapped, with a tooltip), labels do not overlap, the critical path keeps the pinned
milestones; the SVG is rendered in headless Chromium and checked: real text boxes measured for
overlaps, the pixels counted. Chromium is never optional here: missing, it is installed by
scripts/install_chromium.sh, and if that fails the test fails."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from support import Harness, campaigns_tenant

from services.campaigns import service
from services.campaigns.schemas import CampaignUpdate
from shared.auth import Principal
from shared.errors import Conflict

NS = {"s": "http://www.w3.org/2000/svg"}
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
async def keys(campaigns: Harness) -> dict[str, dict[str, str]]:
    return await campaigns_tenant(
        campaigns,
        "acme",
        ["cn-shop"],
        market="CN",
        timezone="Asia/Shanghai",
        currency="CNY",
        platform="taobao",
    )


async def slipped_plan(h: Harness, keys: Any) -> tuple[str, dict[str, Any], str]:
    c = h.client
    r = await c.post(
        "/v1/stores/cn-shop/campaigns",
        json={"name": "Double 11 2027", "event": "double_11", "year": 2027},
        headers=keys["operator"],
    )
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    # The product selection slips by three weeks: its chain can no longer make the pins.
    r = await c.patch(
        f"/v1/campaigns/{cid}/tasks/product_selection",
        json={"duration": 19},
        headers=keys["operator"],
    )
    assert r.status_code == 200, r.text
    g = (await c.get(f"/v1/campaigns/{cid}/gantt", headers=keys["viewer"])).json()
    svg = (await c.get(f"/v1/campaigns/{cid}/gantt.svg", headers=keys["viewer"])).text
    return cid, g, svg


async def test_gantt_after_a_slip_marks_late_tasks_arrows_and_the_critical_path(
    campaigns: Harness, keys: Any
) -> None:
    _, g, svg = await slipped_plan(campaigns, keys)
    tasks = {t["id"]: t for t in g["tasks"]}
    assert g["late"] and all(tasks[t]["slack"] < 0 for t in g["late"])
    assert "product_selection" in g["late"]
    # The pinned milestones the late chain runs into stay on the critical path.
    assert {"registration_deadline", "warm_up", "pre_sale", "main_day"} <= set(g["critical_path"])
    assert "product_selection" in g["critical_path"]
    assert (
        g["dependencies"]
        and {"from": "plan", "to": "product_selection", "type": "FS", "lag": 0} in g["dependencies"]
    )
    root = ET.fromstring(svg)
    arrows = root.findall(".//s:path[@class]", NS)
    deps = {
        (a.attrib["data-from"], a.attrib["data-to"])
        for a in arrows
        if "dep" in a.attrib["class"] and "data-from" in a.attrib
    }
    assert deps == {(d["from"], d["to"]) for d in g["dependencies"]}
    late_shapes = {
        e.attrib["data-task-id"]
        for e in root.iter()
        if "late" in e.attrib.get("class", "").split()
        and e.tag.endswith(("rect", "polygon"))
        and "data-task-id" in e.attrib
    }
    assert late_shapes == set(g["late"])
    # Baseline vs current: the slipped task and what it pushed keep their first dates.
    assert "product_selection" in g["moved"]
    ps = tasks["product_selection"]
    assert ps["baseline_due"] < ps["due"] and ps["baseline_start"] == ps["start"]
    base = next(
        e
        for e in root.findall(".//s:rect[@class='baseline']", NS)
        if e.attrib.get("data-task-id") == "product_selection"
    )
    assert base.attrib["data-due"] == ps["baseline_due"]
    legend = " ".join(t.text or "" for t in root.findall(".//s:g[@class='legend']/s:text", NS))
    for entry in ("critical path", "late (negative slack)", "conflict", "dependency", "baseline"):
        assert entry in legend
    # Whole names: the wrapped lines put together are the name, and the tooltip carries it.
    labels = {
        e.attrib["data-task-id"]: e
        for e in root.findall(".//s:text[@class]", NS)
        if "task-label" in e.attrib["class"]
    }
    assert set(labels) == set(tasks)
    for tid, e in labels.items():
        lines = [t.text or "" for t in e.findall("s:tspan", NS)]
        assert " ".join(lines) == tasks[tid]["name"]
        assert (e.find("s:title", NS).text or "").startswith(tasks[tid]["name"])  # type: ignore[union-attr]
    long = tasks["inventory_logistics"]["name"]
    assert "…" not in svg and long in svg
    # Phase labels sit on their own rows when their bands would collide.
    phases = [
        (float(e.attrib["x"]), float(e.attrib["y"]), e.text or "")
        for e in root.findall(".//s:text[@class='phase-label']", NS)
    ]
    for i, (x1, y1, n1) in enumerate(phases):
        for x2, y2, n2 in phases[i + 1 :]:
            if y1 == y2:
                left, right = sorted([(x1, n1), (x2, n2)])
                assert left[0] + len(left[1]) * 6.2 <= right[0], (n1, n2)


async def test_status_follows_the_dates(campaigns: Harness, keys: Any) -> None:
    r = await campaigns.client.post(
        "/v1/stores/cn-shop/campaigns",
        json={"name": "Double 11 2027", "event": "double_11", "year": 2027},
        headers=keys["operator"],
    )
    cid, start = r.json()["id"], dt.date.fromisoformat(r.json()["start"])
    p = Principal("acme", "u", "k", "operator", None)

    async def set_status(status: str, today: dt.date) -> str:
        async with campaigns.app.state.db.session() as s:
            out = await service.update_campaign(
                s,
                p,
                cid,
                CampaignUpdate(status=status),
                today=today,  # type: ignore[arg-type]
            )
            await s.commit()
        return out.status

    with pytest.raises(Conflict, match="cannot be running on 2026-12-10"):
        await set_status("running", dt.date(2026, 12, 10))
    assert await set_status("running", start) == "running"
    with pytest.raises(Conflict, match="cannot be done"):
        await set_status("done", start)
    assert await set_status("planned", start) == "planned"  # set back
    assert await set_status("running", start) == "running"
    assert await set_status("done", dt.date(2027, 11, 11)) == "done"
    with pytest.raises(Conflict):
        await set_status("running", dt.date(2027, 11, 12))


# ---- headless Chromium -------------------------------------------------------------------


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    out = subprocess.run(
        [str(ROOT / "scripts" / "install_chromium.sh")], capture_output=True, text=True, timeout=900
    )
    found = shutil.which("chromium")
    if out.returncode != 0 or not found:
        pytest.fail(
            f"headless Chromium is required and could not be installed: {out.stderr[-2000:]}"
        )
    return found


PAGE = """<!doctype html><html><body style="margin:0">%s
<pre id="result">pending</pre>
<script>
const svg = document.querySelector('svg');
const boxes = [...svg.querySelectorAll('text')].map(t => {
  const b = t.getBBox();
  return {x: b.x, y: b.y, w: b.width, h: b.height, s: t.textContent.trim().slice(0, 60)};
}).filter(b => b.w > 0);
const overlaps = [];
for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {
  const a = boxes[i], b = boxes[j];
  if (a.x < b.x + b.w - 0.5 && b.x < a.x + a.w - 0.5 && a.y < b.y + b.h - 0.5 && b.y < a.y + a.h - 0.5)
    overlaps.push([a.s, b.s]);
}
const img = new Image();
img.onload = () => {
  const c = document.createElement('canvas');
  c.width = svg.width.baseVal.value; c.height = svg.height.baseVal.value;
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const d = ctx.getImageData(0, 0, c.width, c.height).data;
  let ink = 0; const colours = new Set();
  for (let k = 0; k < d.length; k += 4) {
    if (d[k] < 245 || d[k+1] < 245 || d[k+2] < 245) ink++;
    if (k %% 40 === 0) colours.add((d[k] << 16) | (d[k+1] << 8) | d[k+2]);
  }
  document.getElementById('result').textContent = JSON.stringify(
    {texts: boxes.length, overlaps, ink, pixels: d.length / 4, colours: colours.size});
};
img.onerror = () => { document.getElementById('result').textContent = JSON.stringify({error: 'load'}); };
img.src = 'data:image/svg+xml;base64,' + btoa(unescape(encodeURIComponent(new XMLSerializer().serializeToString(svg))));
</script></body></html>"""


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    w, h = struct.unpack(">II", data[16:24])
    return w, h


async def test_gantt_svg_renders_in_headless_chromium(
    campaigns: Harness, keys: Any, tmp_path: Path
) -> None:
    browser = chromium()
    _, g, svg = await slipped_plan(campaigns, keys)
    root = ET.fromstring(svg)
    width, height = int(root.attrib["width"]), int(root.attrib["height"])
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    # Text measured by the browser's own layout: no two labels overlap.
    page = tmp_path / "gantt.html"
    page.write_text(PAGE % svg, encoding="utf-8")
    out = subprocess.run(
        [browser, *flags, "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = re.search(r'<pre id="result">(.*?)</pre>', out.stdout, re.S)
    assert found, out.stderr[-2000:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert "error" not in result, result
    assert result["texts"] > len(g["tasks"])
    assert result["overlaps"] == [], result["overlaps"]
    # Rendered, not blank: ink on a good share of the pixels, in many colours.
    assert result["pixels"] == width * height
    assert result["ink"] > 0.05 * result["pixels"] and result["colours"] > 20, result
    # And a screenshot, kept for a person to look at.
    shot = tmp_path / "gantt.png"
    (tmp_path / "gantt.svg").write_text(svg, encoding="utf-8")
    subprocess.run(
        [
            browser,
            *flags,
            f"--window-size={width},{height}",
            f"--screenshot={shot}",
            (tmp_path / "gantt.svg").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    data = shot.read_bytes()
    assert png_size(data) == (width, height)
    assert len(data) > 20_000  # a blank page of this size compresses to a few kB
