"""Scheduled re-evaluation (stopped until a user turns it on)."""

from __future__ import annotations

import dagster as dg

eval_job = dg.define_asset_job("eval_job", selection=dg.AssetSelection.assets("eval_report"))
pipeline_job = dg.define_asset_job("pipeline_job", selection=dg.AssetSelection.all())

eval_schedule = dg.ScheduleDefinition(
    name="eval_schedule", job=eval_job, cron_schedule="0 3 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Re-materialise eval_report daily (turn on in the UI or with `dagster schedule start`).",
)
