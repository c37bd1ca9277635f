"""``sidecar report cost``: self-hosting vs API prices on the traffic the sidecar saw."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from sidecar.records import TimeWindow
from sidecar.reports.base import ReportOptions, ReportTable, register, scoped
from sidecar.reports.cost_model import PRICES_AS_OF, Traffic, api_prices, compare, verdict
from sidecar.store.tables import requests_table

MIN_SPAN = timedelta(hours=1)


@register("cost", "Self-hosted vs API cost per 1k queries and month, break-even volume, verdict.")
async def cost(
    connection: AsyncConnection, window: TimeWindow, options: ReportOptions
) -> ReportTable:
    table = requests_table
    query = scoped(
        sa.select(
            sa.func.count().label("requests"),
            sa.func.coalesce(sa.func.sum(table.c.prompt_tokens), 0).label("prompt"),
            sa.func.coalesce(sa.func.sum(table.c.completion_tokens), 0).label("completion"),
            sa.func.min(table.c.started_at).label("first"),
        ).where(table.c.path.like("%/completions"), table.c.status < 400),
        table,
        window,
    )
    row = (await connection.execute(query)).one()
    columns = ["option", "cost_per_1k_queries_usd", "monthly_usd", "break_even_queries_per_month",
               "long_prompt_monthly_usd"]  # fmt: skip
    if not row.requests:
        return ReportTable("Cost", columns, [], ["no completed generations in this window"])
    span = max(window.until - max(row.first, window.since), MIN_SPAN)  # row.first: aware UTC
    traffic = Traffic(row.requests, int(row.prompt), int(row.completion), span / timedelta(days=1))
    settings = options.cost
    gpu = settings.monthly_gpu_usd
    choices = compare(traffic, gpu, api_prices(settings.api_prices), settings.system_prompt_tokens)
    rows: list[tuple[object, ...]] = [
        ("self-hosted (GPU)", round(gpu / traffic.per_month * 1000, 4) if traffic.per_month else None,
         round(gpu, 2), None, None),
    ]  # fmt: skip
    rows += [
        (option.model, round(option.cost_per_query_usd * 1000, 4), round(option.monthly_usd, 2),
         round(option.break_even_queries_per_month) if option.break_even_queries_per_month else None,
         round(option.hidden_saving_monthly_usd, 2))
        for option in choices
    ]  # fmt: skip
    notes = [
        f"Measured {traffic.requests:,} generations over {window_length(traffic.days)}: "
        f"{traffic.per_day:,.0f}/day, {traffic.per_month:,.0f}/month projected; "
        f"{row.prompt / row.requests:,.0f} prompt and {row.completion / row.requests:,.0f} "
        f"completion tokens per query.",
        f"GPU: ${gpu:,.2f}/month. API prices: {PRICES_AS_OF}, per 1M tokens (cost.api_prices overrides).",
        *(verdict(traffic, gpu, option) for option in choices),
    ]
    if settings.system_prompt_tokens:
        notes.append(
            f"Hidden saving: an API model would need the {settings.system_prompt_tokens}-token system "
            "prompt the fine-tuned model does without; its cost is in long_prompt_monthly_usd "
            "(included in the API columns)."
        )
    return ReportTable("Cost: self-hosted vs API", columns, rows, notes)


def window_length(days: float) -> str:
    """``5.0 hours`` under a day, else ``2.5 days``."""
    return f"{days * 24:.1f} hours" if days < 1 else f"{days:.1f} days"
