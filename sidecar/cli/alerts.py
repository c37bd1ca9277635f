"""``sidecar alerts list|silence|test``."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from sidecar.cli.common import (
    CONTEXT,
    config_option,
    database_option,
    load,
    open_engine,
    require_schema,
)

_DURATION = re.compile(r"^(\d+)([mhd])$")


@click.group(context_settings=CONTEXT)
def alerts() -> None:
    """Alerts: what is firing, silences, test notifications."""


@alerts.command("list", context_settings=CONTEXT)
@config_option
@database_option
def list_alerts(config_path: str | None, database_url: str | None) -> None:
    """Alerts pending or firing now, and the latest transitions."""
    from sidecar.store.alerts import load_states, recent_events

    settings = load(config_path, uses=("database",), database={"url": database_url})
    require_schema(settings)

    async def run() -> tuple[Any, Any]:
        async with open_engine(settings) as engine, engine.connect() as connection:
            return await load_states(connection), await recent_events(connection)

    states, events = asyncio.run(run())
    active = [state for state in states.values() if state.status != "inactive"]
    click.echo("active alerts:" if active else "no alert is pending or firing")
    for state in active:
        scope = ",".join(f"{k}={v}" for k, v in state.scope) or "-"
        since = state.fired_at or state.active_since
        click.echo(
            f"  {state.status:<8} {state.rule:<20} {scope:<30} value {state.value} since {since}"
        )
    if events:
        click.echo("recent transitions:")
    for event in events:
        click.echo(
            f"  {event.at}  {event.event:<9} {event.rule:<20} {event.scope} value {event.value}"
        )


@alerts.command(context_settings=CONTEXT)
@click.argument("rule")
@click.option(
    "--label",
    "labels",
    multiple=True,
    help="Only scopes with this label, as key=value (repeatable).",
)
@click.option("--for", "duration", required=True, help="How long: 30m, 2h, 1d.")
@click.option("--comment", help="Why (kept with the silence).")
@config_option
@database_option
def silence(rule: str, labels: tuple[str, ...], duration: str, comment: str | None,
            config_path: str | None, database_url: str | None) -> None:  # fmt: skip
    """Silence RULE (optionally only some scopes): state keeps changing, nothing is sent."""
    from sidecar.store.alerts import add_silence

    match = _DURATION.match(duration)
    if match is None:
        raise click.BadParameter("use minutes, hours or days: 30m, 2h, 1d", param_hint="--for")
    unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    matchers: dict[str, str] = {}
    for label in labels:
        key, sep, value = label.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{label!r} is not key=value", param_hint="--label")
        matchers[key] = value
    settings = load(config_path, uses=("database",), database={"url": database_url})
    require_schema(settings)
    now = datetime.now(UTC)
    until = now + timedelta(**{unit: int(match.group(1))})

    async def run() -> None:
        async with open_engine(settings) as engine, engine.begin() as connection:
            await add_silence(connection, rule, matchers, until, now, comment)

    asyncio.run(run())
    click.echo(f"silenced {rule} {matchers or '(every scope)'} until {until:%Y-%m-%d %H:%M} UTC")


@alerts.command(context_settings=CONTEXT)
@click.option(
    "--notifier", required=True,
    help="slack, webhook-0, webhook-1, ... or log; `webhook` when there is one webhook.",
)  # fmt: skip
@config_option
def test(notifier: str, config_path: str | None) -> None:
    """Send a clearly marked test alert through one configured notifier, now."""
    import aiohttp

    from sidecar.alerts.runner import build_notifiers
    from sidecar.notifiers.payloads import AlertNotice
    from sidecar.records import Transition

    settings = load(config_path, uses=("alerts",))
    notifiers = build_notifiers(settings.alerts)
    notifier = pick_notifier(notifier, list(notifiers))
    now = datetime.now(UTC)
    transition = Transition(
        "TEST_sidecar_alert", (("test", "true"),), "firing", now, 1.0, 0.0, "info", True, now
    )
    notice = AlertNotice(
        transition, "TEST: this is a test alert from `sidecar alerts test`; nothing is wrong."
    )
    chosen = notifiers[notifier]

    async def run() -> Any:
        async with aiohttp.ClientSession() as session:
            return await chosen.send(session, chosen.payload(notice), 0)

    result = asyncio.run(run())
    if not result.sent:
        raise click.ClickException(f"{notifier}: not delivered: {result.error}")
    click.echo(f"{notifier}: test alert delivered")


def pick_notifier(wanted: str, configured: list[str]) -> str:
    """The configured notifier ``wanted`` names: its full name, or its kind (``webhook``) when
    exactly one notifier is of that kind."""
    if wanted in configured:
        return wanted
    of_kind = [name for name in configured if name.rsplit("-", 1)[0] == wanted]
    if len(of_kind) == 1:
        return of_kind[0]
    if of_kind:
        raise click.BadParameter(
            f"{len(of_kind)} {wanted} notifiers are configured: name one of {', '.join(of_kind)}",
            param_hint="--notifier",
        )
    raise click.BadParameter(
        f"{wanted!r} is not configured; configured: {', '.join(configured) or 'none'}",
        param_hint="--notifier",
    )
