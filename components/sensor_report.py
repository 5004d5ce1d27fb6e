"""The sensor gate's report as the KFP dashboard shows it (Markdown), kept apart from the steps that
compute the figures (``components.sensor_steps``)."""

from __future__ import annotations

from components.sensor_steps import SensorEvaluation


def markdown_report(evaluation: SensorEvaluation, edge: str) -> str:
    """The gate's report as the KFP dashboard shows it."""
    verdict = "passed" if evaluation.passed else "refused"
    lines = [
        f"# Sensor model for {edge}: gate {verdict}",
        "",
        f"- threshold {evaluation.threshold:.4g}, texture threshold {evaluation.texture_threshold or 0:.4g}",
        f"- false alarms on held-out normal windows: {evaluation.false_alarm_rate:.4%}",
    ]
    if evaluation.precision is not None and evaluation.recall is not None:
        lines.append(f"- precision {evaluation.precision:.3f}, recall {evaluation.recall:.3f}")
        lines.append(
            f"- labelled faults that raise an alarm: {evaluation.faults_caught} of {evaluation.faults}"
        )
    if evaluation.production:
        before = evaluation.production
        lines.append(f"- the edge's model on these windows: precision {before['precision']:.3f}, ")
        lines[-1] += f"recall {before['recall']:.3f}, alarms on {before.get('faults_caught', 0):.0f} faults"
    if evaluation.recall_by_label:
        lines += ["", "| fault | recall |", "| --- | ---: |"]
        lines += [f"| {kind} | {recall:.3f} |" for kind, recall in sorted(evaluation.recall_by_label.items())]
    lines += (
        [""] + [f"**Refused:** {r}" for r in evaluation.reasons] + [f"*Note:* {n}" for n in evaluation.notes]
    )
    return "\n".join(lines) + "\n"
