"""The report's single HTML page (Jinja2, autoescaped), with every figure inlined as base64."""
# ruff: noqa: E501 - the HTML template reads better unwrapped

from __future__ import annotations

import json
from typing import Any

import jinja2

_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>hfaid funnel report</title>
<style>
 body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }
 h1 { margin-bottom: 0; } .muted { color: #666; font-size: 90%; }
 table { border-collapse: collapse; margin: 8px 0 16px; font-size: 90%; }
 th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
 th:first-child, td:first-child { text-align: left; }
 .grid { display: flex; flex-wrap: wrap; gap: 8px; }
 img { max-width: 100%; } pre { background: #f5f5f5; padding: 8px; overflow-x: auto; }
 section { margin-top: 28px; }
</style></head><body>
<h1>hfaid funnel report</h1>
<p class="muted">catalog {{ s.catalog }} &middot; generated {{ s.generated }}</p>

<section id="funnel"><h2>Funnel</h2>
<img alt="funnel" src="{{ fig['funnel.png'] }}">
<table><tr><th>stage</th><th>seen</th><th>passed</th><th>rejected</th><th>errors</th>
<th>top reasons</th></tr>
{% for st in s.funnel.stages %}<tr><td>{{ st.stage }}</td><td>{{ "{:,}".format(st.seen) }}</td>
<td>{% if 'not_run' in st %}not run ({{ st.not_run }}){% else %}{{ "{:,}".format(st.passed) }}{% endif %}</td><td>{{ "{:,}".format(st.rejected) }}</td>
<td>{{ "{:,}".format(st.errors) }}</td>
<td>{% for r, n in st.reasons.items() %}{% if loop.index <= 4 %}{{ r }} {{ "{:,}".format(n) }}{% if not loop.last %}, {% endif %}{% endif %}{% endfor %}</td></tr>
{% endfor %}</table></section>

<section id="comparison"><h2>Dataset comparison (paper Table 3 style: mean scores)</h2>
{% if s.table3.columns %}<table><tr><th>set</th><th>images</th>
{% for c in s.table3.columns %}<th>{{ c }}{{ " &darr;"|safe if lower[c] else " &uarr;"|safe }}</th>{% endfor %}</tr>
{% for row in s.table3.rows %}<tr><td>{{ row.set }}</td><td>{{ "{:,}".format(row.images) }}</td>
{% for c in s.table3.columns %}<td>{{ "%.4g"|format(row[c]) if row[c] is not none else "-" }}</td>{% endfor %}</tr>
{% endfor %}</table>
<p class="muted">Paper's HFAID: MANIQA 0.7136, MUSIQ 75.69, CLIP-IQA 0.7524, BRISQUE 5.671, NIQE 2.260.</p>
{% else %}<p>No Table 3 metric (maniqa, musiq, clipiqa, brisque, niqe) has been scored yet.</p>{% endif %}
</section>

{% if s.stage1 %}<section id="stage1"><h2>Stage 1 measures and their [clean] cuts</h2>
<p class="muted">Every decoded image's stored measurement; dashed line: the cut (absolute or from the pool, <code>[clean.pool]</code>); `fails` counts images failing that cut. <code>hfaid clean --explain</code> prints the same as a table.</p>
<div class="grid">{% for c in s.stage1 %}<img alt="stage 1 {{ c.cut }}" src="{{ fig[c.figure] }}">{% endfor %}</div>
</section>{% endif %}

<section id="evaluation"><h2>Evaluation (paper Table 1 style: methods as columns, metrics as rows)</h2>
{% for t in s.evaluation %}<h3>Test set {{ t.set_id }}</h3><p class="muted">{{ t.folder }}</p>
<table><tr><th>metric</th>{% for m in t.methods %}<th>{{ m }}</th>{% endfor %}{% if t.rows|selectattr("note")|list %}<th>note</th>{% endif %}</tr>
{% for r in t.rows %}<tr><td>{{ r.label }}</td>{% for c in r.cells %}<td>{% if c.best %}<b>{{ c.text }}</b>{% else %}{{ c.text }}{% endif %}</td>{% endfor %}{% if t.rows|selectattr("note")|list %}<td>{{ r.note }}</td>{% endif %}</tr>
{% endfor %}</table><p class="muted">{{ t.caption }}</p>
{% else %}<p>No evaluation yet (<code>hfaid evaluate --test-set DIR --hr FOLDER --baseline bicubic,lanczos</code>).</p>{% endfor %}
</section>

<section id="histograms"><h2>Metric distributions and thresholds</h2>
<p class="muted">Dashed lines: the thresholds each selection stage resolves to under the current policy.</p>
<div class="grid">{% for m in metrics %}<img alt="histogram {{ m }}" src="{{ fig['hist_' ~ safe(m) ~ '.png'] }}">{% endfor %}</div>
</section>

<section id="montages"><h2>Best and worst images per metric</h2>
{% for m in metrics %}{% if ('montage_' ~ safe(m) ~ '.png') in fig %}<h3>{{ m }}</h3>
<img alt="montage {{ m }}" src="{{ fig['montage_' ~ safe(m) ~ '.png'] }}">{% endif %}{% endfor %}
</section>

<section id="reviewers"><h2>Reviewers</h2>
{% if s.reviewers %}<table><tr><th>reviewer</th><th>votes</th><th>accepts</th><th>rejects</th><th>votes/hour</th></tr>
{% for r in s.reviewers.stats %}<tr><td>{{ r.reviewer }}</td><td>{{ r.votes }}</td><td>{{ r.accepts }}</td>
<td>{{ r.rejects }}</td><td>{{ r.votes_per_hour if r.votes_per_hour is not none else "-" }}</td></tr>{% endfor %}
</table>
<p>Images with two votes: {{ s.reviewers.agreement.pairs }}; Cohen's kappa between first and second vote:
{{ "%.3f"|format(s.reviewers.agreement.kappa) if s.reviewers.agreement.kappa is not none else "-" }}</p>
{% else %}<p>No votes yet.</p>{% endif %}
</section>

<section id="study"><h2>Metric study</h2>
{% if s.study %}<p>Study {{ s.study.study_id }}: agreement = (best-list images judged good + worst-list images judged bad) / votes; 0.5 is chance.</p>
<table><tr><th>metric</th><th>agreement</th><th>best judged good</th><th>worst judged good</th><th>votes</th><th>reviewers</th><th>verdict</th></tr>
{% for r in s.study.rows %}<tr><td>{{ r.metric }}</td><td>{{ "%.2f"|format(r.agreement) if r.agreement is not none else "-" }}</td>
<td>{{ "%.2f"|format(r.best_accept_rate) if r.best_accept_rate is not none else "-" }}</td>
<td>{{ "%.2f"|format(r.worst_accept_rate) if r.worst_accept_rate is not none else "-" }}</td>
<td>{{ r.best_votes + r.worst_votes }}</td><td>{{ r.reviewers }}</td><td>{{ r.verdict }}</td></tr>{% endfor %}</table>
{% else %}<p>No metric study yet (<code>hfaid study create --metrics niqe,maniqa,clipiqa --n 200</code>).</p>{% endif %}
</section>

<section id="thresholds"><h2>Thresholds learned from reviewers</h2>
{% if s.rocs %}{% if 'roc.png' in fig %}<img alt="roc" src="{{ fig['roc.png'] }}">{% endif %}
<table><tr><th>metric</th><th>reviewed</th><th>AUC</th><th>threshold</th><th>precision</th><th>recall</th></tr>
{% for r in s.rocs %}<tr><td>{{ r.metric }}</td><td>{{ r.n }}</td>
<td>{{ "%.3f"|format(r.auc) if r.auc is not none else "-" }}</td>
<td>{{ ("&le; "|safe if r.lower_better else "&ge; "|safe) ~ ("%.4g"|format(r.threshold)) if r.threshold is not none else "-" }}</td>
<td>{{ "%.2f"|format(r.precision) if r.precision is not none else "-" }}</td>
<td>{{ "%.2f"|format(r.recall) if r.recall is not none else "-" }}</td></tr>{% endfor %}</table>
<p>As a policy snippet (also <code>hfaid select --suggest</code>):</p><pre>{{ s.snippet }}</pre>
{% else %}<p>No reviewed images yet: thresholds appear once the review stage has verdicts.</p>{% endif %}
</section>

<section id="policy"><h2>Policy used</h2><pre>{{ policy_json }}</pre></section>
</body></html>
"""

_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)


def render_page(sections: dict[str, Any], figures: dict[str, str], metrics: list[str]) -> str:
    """The whole report as one HTML string; `figures` maps file names to data: URIs."""
    from hfaid_core.settings.policy import LOWER_BETTER

    def safe(metric: str) -> str:
        return "".join(c if c.isalnum() else "_" for c in metric)

    return _ENV.from_string(_TEMPLATE).render(
        s=sections, fig=figures, metrics=metrics, safe=safe, lower=LOWER_BETTER,
        policy_json=json.dumps(sections["policy"], indent=2),
    )
