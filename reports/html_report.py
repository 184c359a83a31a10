#!/usr/bin/env python3
"""Renders a gnv sweep's report.json as one self-contained HTML file (opens offline): the
summary, the impl x stress-class table, breakdown points, failures, environment, and plots made
with matplotlib and inlined as SVG:

  * error against offset K, per implementation, one panel per dtype and layout (log-log);
  * error against the condition number kappa (log-log);
  * error against group size m = C/G * spatial size (log-log).

The error is the condition-scaled error max_cond_err, the verdict metric; values of 0 (the exact
answer) are drawn at 1e-3 so that log axes can show them, infinite ones (NaN where a value is
defined, unwritten elements) as red triangles above the panel's finite points. Only judged cells are
plotted (a SKIPPED cell has no measurement), and each panel draws the budget: the line 4 + 2 log2(m)
(or the sequential profile's) on the group-size plot, the smallest budget of the panel's cells on
the others. Usage:

  html_report.py report.json -o report.html

The output is written to a temporary file in the same folder and renamed over the target, so an
interrupted run never leaves a truncated report. Needs Debian's python3-matplotlib (the first
python3 on PATH may be a pyenv one without it: run /usr/bin/python3).
"""
import argparse
import html
import io
import json
import math
import os
import sys
import tempfile
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

FLOOR = 1e-3  # where an exact result (error 0) is drawn on a log axis
GROUP_STRESSES = ("normal", "offset:10000")  # what the ci and full presets' group-size sections run


def num(v):
    if isinstance(v, str):
        return {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}.get(v, math.nan)
    return float(v)


def worst_err(cell):
    if "outputs" in cell:
        errs = [num(o["max_cond_err"]) for o in cell["outputs"]]
    else:  # the baseline form
        errs = [num(e) for _, e in cell.get("max_cond_err", [])]
    if not errs:
        return math.nan
    return math.nan if any(math.isnan(e) for e in errs) else max(errs)


def offset_of(stress):
    if stress.startswith("offset:"):
        return float(stress.split(":", 1)[1])
    return None


def dtype_of(cell):
    return cell["problem"]["dtype"] if "problem" in cell else cell["dtype"]


def layout_of(cell):
    return cell["problem"]["layout"] if "problem" in cell else cell["layout"]


def group_size(cell, grid):
    for sec in grid["sections"]:
        if sec["name"] != cell["section"]:
            continue
        for sh in sec["shapes"]:
            if sh["name"] == cell["shape_name"]:
                dims = [int(x) for x in sh["shape"].split(",")]
                spatial = 1
                for d in dims[2:]:
                    spatial *= d
                g = cell["problem"]["G"] if "problem" in cell else cell["G"]
                return dims[1] // g * spatial
    return None


def svg(fig):
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # drop the XML prolog and DOCTYPE: inline SVG


def panels(report):
    """(dtype, layout) pairs present, in grid order."""
    present = {(dtype_of(c), layout_of(c)) for c in report["cells"]}
    return [(d, l) for d in report["grid"]["dtypes"] for l in report["grid"]["layouts"] if (d, l) in present]


def impl_style(impls, controls):
    cmap = plt.get_cmap("tab10")
    return {
        impl: dict(color=cmap(i % 10), linestyle="--" if impl in controls else "-",
                   label=impl + (" (control)" if impl in controls else ""))
        for i, impl in enumerate(impls)
    }


def judged(report):
    """The cells with a measurement: SKIPPED cells (the kernel declined) are not plotted."""
    return [c for c in report["cells"] if c["verdict"] != "SKIPPED"]


def budget_of(report, length):
    """The budget of a reduction of `length` under the report's profile (docs/numerics.md "Budgets"); the
    curve drawn on the group-size plot. The numbers judged are the cells' own, in report.json."""
    if report["grid"].get("budget", "pairwise") == "sequential":
        return 4 + 16 * math.sqrt(length)
    return 4 + 2 * math.log2(max(length, 1))


def cell_budget(cell):
    """The smallest budget over a cell's outputs (what its verdict was held to), or None."""
    b = [num(o["budget"]) for o in cell.get("outputs", []) if "budget" in o]
    return min(b) if b else None


def figure_grid(n):
    cols = min(n, 4)
    rows = (n + cols - 1) // cols
    # Room at the top for the figure's title above the panels' own titles.
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.0 * rows + 0.5), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def style_panel(ax, panel, xlabel):
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linewidth=0.6, linestyle=":")
    ax.set_title(f"{panel[0]} {panel[1]}", fontsize=9)
    ax.set_xlabel(xlabel, fontsize=8)
    ax.set_ylabel("worst max_cond_err", fontsize=8)
    ax.tick_params(labelsize=7)


def finish_figure(fig, axes, title):
    """The title above the panels' own titles, and one legend under them with every label once."""
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.legend(handles, labels, loc="upper center", ncol=min(len(labels), 4), fontsize=8,
               bbox_to_anchor=(0.5, 0.0))
    return svg(fig)


def draw_infinite(ax, xs_inf, ceiling, first):
    """Infinite errors: red triangles at the top of the panel, named in the legend."""
    if xs_inf:
        ax.scatter(xs_inf, [ceiling] * len(xs_inf), marker="^", s=28, color="red", zorder=5,
                   label="infinite error (NaN/Inf or unwritten)" if first else None)


def ceiling_of(values):
    finite = [v for v in values if math.isfinite(v)]
    return max([FLOOR * 10] + [v * 10 for v in finite])


def plot_lines(report, key_x, title, xlabel, series_by_stress=False, budget_curve=False):
    """One panel per (dtype, layout); per impl (and stress), the worst error at each x."""
    pl = panels(report)
    impls = report["grid"]["impls"]
    controls = {c["impl"] for c in report["cells"] if c["control"]}
    style = impl_style(impls, controls)
    data = defaultdict(dict)  # (panel, impl, series) -> {x: worst}
    budgets = defaultdict(list)  # panel -> budgets of its cells
    for c in judged(report):
        x = key_x(c)
        if x is None or x <= 0:
            continue
        e = worst_err(c)
        e = math.inf if math.isnan(e) else e
        series = c["stress"] if series_by_stress else ""
        k = ((dtype_of(c), layout_of(c)), c["impl"], series)
        data[k][x] = max(data[k].get(x, 0.0), e)
        if cell_budget(c) is not None:
            budgets[k[0]].append(cell_budget(c))
    if not data:
        return None
    fig, axes = figure_grid(len(pl))
    markers = "os^vD<>p*h"
    stress_names = sorted({k[2] for k in data})
    first_inf = True
    for ax, p in zip(axes, pl):
        ceiling = ceiling_of([v for (panel, _, _), pts in data.items() if panel == p for v in pts.values()]
                             + budgets[p])
        xs_all = set()
        for (panel, impl, series), pts in sorted(data.items()):
            if panel != p:
                continue
            xs = sorted(pts)
            xs_all.update(xs)
            finite = [x for x in xs if math.isfinite(pts[x])]
            st = dict(style[impl])
            if series_by_stress:
                st["label"] = f"{st['label']} {series}"
                st["marker"] = markers[stress_names.index(series) % len(markers)]
            else:
                st["marker"] = "o"
            ax.plot(finite, [max(pts[x], FLOOR) for x in finite], markersize=3, linewidth=1.2, **st)
            inf_xs = [x for x in xs if not math.isfinite(pts[x])]
            draw_infinite(ax, inf_xs, ceiling, first_inf)
            first_inf = first_inf and not inf_xs
        style_panel(ax, p, xlabel)
        if budget_curve and xs_all:
            xs = sorted(xs_all)
            ax.plot(xs, [budget_of(report, x) for x in xs], color="black", linewidth=1, linestyle="-.",
                    label="budget")
        elif budgets[p]:
            ax.axhline(min(budgets[p]), color="black", linewidth=1, linestyle="-.", label="budget (smallest in panel)")
    return finish_figure(fig, axes, title)


def plot_kappa(report):
    pl = panels(report)
    impls = report["grid"]["impls"]
    controls = {c["impl"] for c in report["cells"] if c["control"]}
    style = impl_style(impls, controls)
    # Judged cells with a finite kappa only: the axis spans what was measured.
    cells = [c for c in judged(report)
             if "kappa_max" in c and num(c["kappa_max"]) > 0 and math.isfinite(num(c["kappa_max"]))]
    if not cells:
        return None
    fig, axes = figure_grid(len(pl))
    first_inf = True
    for ax, p in zip(axes, pl):
        mine = [c for c in cells if (dtype_of(c), layout_of(c)) == p]
        ceiling = ceiling_of([worst_err(c) for c in mine] + [cell_budget(c) or 0 for c in mine])
        for impl in impls:
            pts = [(num(c["kappa_max"]), worst_err(c)) for c in mine if c["impl"] == impl]
            fin = [(k, max(e, FLOOR)) for k, e in pts if math.isfinite(e)]
            if fin:
                st = style[impl]
                ax.scatter([k for k, _ in fin], [e for _, e in fin], s=6, color=st["color"],
                           marker="x" if impl in controls else "o", label=st["label"], alpha=0.7)
            inf_ks = [k for k, e in pts if not math.isfinite(e)]
            draw_infinite(ax, inf_ks, ceiling, first_inf)
            first_inf = first_inf and not inf_ks
        style_panel(ax, p, "κ = max|x| / sqrt(var + eps)")
        bs = [cell_budget(c) for c in mine if cell_budget(c) is not None]
        if bs:
            ax.axhline(min(bs), color="black", linewidth=1, linestyle="-.", label="budget (smallest in panel)")
    return finish_figure(fig, axes, "Error against the condition number κ (judged cells)")


def esc(s):
    return html.escape(str(s))


def fmt(v):
    v = num(v)
    return "nan" if math.isnan(v) else f"{v:.3g}"


def table_html(report):
    stresses = []
    for sec in report["grid"]["sections"]:
        for s in sec["stresses"]:
            if s not in stresses:
                stresses.append(s)
    rows = {}
    sev = {"PASS": 0, "FAIL": 1, "UNWRITTEN": 2, "TIMEOUT": 3, "CRASH": 4, "ERROR": 5}
    # Each entry: worst verdict and error over judged, unwaived cells; SKIPPED cells (the kernel
    # declined) and waived ones (XFAIL/XPASS) are counted beside, as report.md does.
    for c in report["cells"]:
        key = (c["impl"], dtype_of(c), layout_of(c))
        row = rows.setdefault(key, {"control": c["control"], "e": {}})
        ent = row["e"].setdefault(c["stress"], {"v": "PASS", "w": 0.0, "judged": 0, "skipped": 0, "xfail": 0, "xpass": 0})
        if c["verdict"] == "SKIPPED":
            ent["skipped"] += 1
            continue
        ent["judged"] += 1
        if "waiver" in c:
            ent["xpass" if c["verdict"] == "PASS" else "xfail"] += 1
        elif sev[c["verdict"]] > sev[ent["v"]]:
            ent["v"] = c["verdict"]
        e, w = worst_err(c), ent["w"]
        ent["w"] = e if (math.isnan(e) or e > w) and not (isinstance(w, float) and math.isnan(w)) else w
    out = ["<table><tr><th>impl</th><th>dtype</th><th>layout</th>"]
    out += [f"<th>{esc(s.replace('offset:', 'off:'))}</th>" for s in stresses]
    out.append("</tr>")
    order = [(i, d, l) for i in report["grid"]["impls"] for d in report["grid"]["dtypes"]
             for l in report["grid"]["layouts"]]
    for key in order:
        if key not in rows:
            continue
        row = rows[key]
        label = key[0] + (" (control)" if row["control"] else "")
        out.append(f"<tr><td>{esc(label)}</td><td>{key[1]}</td><td>{key[2]}</td>")
        for s in stresses:
            if s not in row["e"]:
                out.append("<td>-</td>")
                continue
            ent = row["e"][s]
            if ent["judged"] == 0:
                out.append(f'<td>⊘ {ent["skipped"]} skipped</td>')
                continue
            v, w = ent["v"], ent["w"]
            cls = "pass" if v == "PASS" and not ent["xpass"] else ("ctl" if row["control"] else "fail")
            mark = "✓" if v == "PASS" else ("⚠" if v in ("ERROR", "CRASH", "TIMEOUT") else "✗")
            extra = "".join(f" {ent[k]} {k.upper()}" for k in ("xpass", "xfail") if ent[k])
            extra += f" ({ent['skipped']} skipped)" if ent["skipped"] else ""
            out.append(f'<td class="{cls}">{mark} {fmt(w)}{esc(extra)}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def breakdown_html(report):
    bd = report.get("summary", {}).get("breakdown", [])
    if not bd:
        return "<p>No offset stress classes in this grid.</p>"
    dtypes = [d for d in report["grid"]["dtypes"] if any(b["dtype"] == d for b in bd)]
    rows = []
    for b in bd:
        if (b["impl"], b.get("layout", "")) not in rows:
            rows.append((b["impl"], b.get("layout", "")))
    by = {(b["impl"], b.get("layout", ""), b["dtype"]): b for b in bd}
    out = ["<table><tr><th>impl</th><th>layout</th>" + "".join(f"<th>{d}</th>" for d in dtypes) + "</tr>"]
    for i, lay in rows:
        ctl = any(b["control"] for b in bd if b["impl"] == i)
        out.append(f"<tr><td>{esc(i)}{' (control)' if ctl else ''}</td><td>{esc(lay)}</td>")
        for d in dtypes:
            b = by.get((i, lay, d))
            if b is None:
                out.append("<td>-</td>")
            elif b["offset"] is None:
                out.append(f'<td class="pass">none (≤ {fmt(b["max_tested"])})</td>')
            else:
                out.append(f'<td class="{"ctl" if ctl else "fail"}">{fmt(b["offset"])}</td>')
        out.append("</tr>")
    out.append("</table>")
    return "".join(out)


def failures_html(report):
    # The cells summarize() lists (report.json's summary): stale waivers, failures, control errors.
    summary = report.get("summary", {})
    wanted = set(summary.get("xpass", [])) | set(summary.get("failures", []))
    fails = [c for c in report["cells"] if c["index"] in wanted
             or (c["control"] and c["verdict"] in ("ERROR", "CRASH", "TIMEOUT"))]
    if not fails:
        return "<p>No non-control cell failed.</p>"
    out = ["<ul>"]
    for c in fails[:200]:
        detail = c.get("error", "")
        for o in c.get("outputs", []):
            if o["verdict"] != "PASS":
                detail += f" [{o['name']} max_cond_err={fmt(o['max_cond_err'])} budget={fmt(o['budget'])}]"
        label = ("XPASS" if c["verdict"] == "PASS" else "XFAIL") if "waiver" in c else c["verdict"]
        out.append(f"<li><code>{esc(c.get('id', c['impl']))}</code> <b>{esc(label)}</b> {esc(detail)}"
                   f"<br>reproduce: <code>{esc(c.get('reproduce', ''))}</code>")
        if c.get("case_dir"):
            out.append(f"<br>replay: <code>{esc(c.get('replay', ''))}</code>")
        out.append("</li>")
    if len(fails) > 200:
        out.append(f"<li>… and {len(fails) - 200} more in report.json</li>")
    out.append("</ul>")
    return "".join(out)


def env_html(report):
    env = report["environment"]
    rows = [(k, env[k]) for k in ("gnv_version", "git_revision", "date", "compiler", "compiler_flags",
                                  "build_type", "cpu", "cpu_cores", "gpu", "os")]
    rows.append(("libraries", ", ".join(f"{k} {v}" for k, v in env["libraries"].items())))
    rows.append(("run", f"{fmt(report['timing']['wall_s'])} s with {report['timing']['jobs']} jobs"))
    return "<table>" + "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows) + "</table>"


CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; font-size: 12px; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
td.pass { background: #e8f5e9; } td.fail { background: #ffcdd2; } td.ctl { background: #fff3e0; }
code { font-size: 11px; } figure { margin: 1.5em 0; } svg { max-width: 100%; height: auto; }
"""


def render(report):
    s = report.get("summary", {})
    grid = report["grid"]
    result = s.get("result", "?")
    head = (f"{s.get('cells', len(report['cells']))} cells, {s.get('passed', '?')} pass, "
            f"{len(s.get('failures', []))} non-control failures")
    for key, what in (("skipped", "skipped"), ("xfail", "XFAIL"), ("xpass", "XPASS (stale waivers)")):
        n = s.get(key, 0)
        n = len(n) if isinstance(n, list) else n
        if n:
            head += f", {n} {what}"
    for impl, c in s.get("controls", {}).items():
        head += f"; control {impl} failed {c['failed']} of {c['cells']} cells"
    if report["shard"]["count"] > 1:
        head += f" (shard {report['shard']['index']}/{report['shard']['count']})"
    plots = [
        plot_lines(report, lambda c: offset_of(c["stress"]),
                   "Error against offset K (stress offset:K), worst over shapes and seeds", "offset K"),
        plot_kappa(report),
        plot_lines(report, lambda c: group_size(c, grid) if c["stress"] in GROUP_STRESSES else None,
                   "Error against group size m (stress classes normal and offset:1e4)", "group size m",
                   series_by_stress=True, budget_curve=True),
    ]
    figs = "".join(f"<figure>{p}</figure>" for p in plots if p)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gnv report: grid {esc(grid['preset'])}</title>
<style>{CSS}</style></head><body>
<h1>gnv accuracy report: grid <code>{esc(grid['preset'])}</code></h1>
<p><b>Result: {esc(result)}</b> — {esc(head)}.</p>
<h2>Worst condition-scaled error</h2>
<p>Each entry: the worst verdict over the shapes, groups and seeds of that stress class, and the largest
condition-scaled error <code>max_cond_err</code> (about 1 is the final rounding; budget profile
<b>{esc(grid.get('budget', 'pairwise'))}</b>: {'4 + 16·√L' if grid.get('budget') == 'sequential' else '4 + 2·log2(L)'}).</p>
{table_html(report)}
<h2>Breakdown points</h2><p>The smallest offset K at which an implementation fails.</p>
{breakdown_html(report)}
<h2>Plots</h2>
{figs}
<h2>Failures</h2>
{failures_html(report)}
<h2>Grid</h2>
<p>impls {esc(', '.join(grid['impls']))}; dtypes {esc(', '.join(grid['dtypes']))};
layouts {esc(', '.join(grid['layouts']))}; backward {'on' if grid['backward'] else 'off'}.</p>
<ul>{''.join(f"<li><b>{esc(sec['name'])}</b>: {esc('; '.join(sh['name'] + ' (' + sh['shape'] + ')' for sh in sec['shapes']))}; "
            f"stresses {esc(', '.join(sec['stresses']))}; seeds {esc(', '.join(map(str, sec['seeds'])))}</li>"
            for sec in grid['sections'])}</ul>
<h2>Environment</h2>
{env_html(report)}
</body></html>
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("report", help="report.json of gnv sweep or gnv merge")
    ap.add_argument("-o", "--out", required=True, help="the HTML file to write")
    args = ap.parse_args()
    with open(args.report, encoding="utf-8") as f:
        report = json.load(f)
    if report.get("format") != "gnv-report":
        sys.exit(f"{args.report}: not a gnv report")
    text = render(report)
    folder = os.path.dirname(os.path.abspath(args.out))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".report.html.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, args.out)
    except BaseException:
        os.unlink(tmp)
        raise


if __name__ == "__main__":
    main()
