"""The cost arithmetic against the course's worked examples."""

from __future__ import annotations

import pytest

from sidecar.reports.cost_model import (
    DAYS_PER_MONTH,
    DEFAULT_API_PRICES,
    PRICES_AS_OF,
    Traffic,
    api_prices,
    break_even,
    compare,
    verdict,
)
from sidecar.settings import ApiPrice, CostSettings
from sidecar.settings.reference import render


def test_break_even_worked_example() -> None:
    assert break_even(200.0, 0.01) == pytest.approx(20_000)  # ~667 queries/day
    assert break_even(200.0, 0.0) is None


def test_gpu_monthly_cost_from_hourly_price() -> None:
    assert CostSettings(gpu_hourly_usd=2.0, gpu_count=2).monthly_gpu_usd == pytest.approx(2920.0)
    assert CostSettings(gpu_hourly_usd=2.0, gpu_monthly_usd=150.0).monthly_gpu_usd == 150.0


def test_verdict_on_both_sides_of_break_even() -> None:
    price = {
        "api": ApiPrice(input_per_million_usd=0.0, output_per_million_usd=1e4)
    }  # $0.01 per 1-token call
    low = Traffic(requests=500, prompt_tokens=0, completion_tokens=500, days=1.0)  # ~15k/month
    high = Traffic(requests=1000, prompt_tokens=0, completion_tokens=1000, days=1.0)  # ~30k/month
    (below,) = compare(low, 200.0, price)
    (above,) = compare(high, 200.0, price)
    assert verdict(low, 200.0, below).startswith("api is cheaper")
    assert verdict(high, 200.0, above).startswith("Self-hosting is cheaper than api")
    assert above.monthly_usd == pytest.approx(0.01 * 1000 * DAYS_PER_MONTH)


def test_hidden_saving_prices_the_long_system_prompt() -> None:
    traffic = Traffic(requests=10_000, prompt_tokens=0, completion_tokens=0, days=1.0)
    (option,) = compare(
        traffic, 200.0, {"gpt-4o": DEFAULT_API_PRICES["gpt-4o"]}, system_prompt_tokens=1000
    )
    # 1,000 tokens x $2.50/1M = $0.0025 per query, 10,000 a day.
    assert option.hidden_saving_monthly_usd == pytest.approx(0.0025 * 10_000 * DAYS_PER_MONTH)


def test_the_configuration_reference_quotes_the_shipped_prices() -> None:
    (row,) = [line for line in render().splitlines() if line.startswith("| `cost.api_prices` |")]
    assert PRICES_AS_OF in row
    for model, price in DEFAULT_API_PRICES.items():
        quoted = f"${price.input_per_million_usd:.2f} / ${price.output_per_million_usd:.2f}"
        assert f"`{model}` ({quoted})" in row, f"cost.api_prices' description misses {model}"


def test_configured_prices_override_and_extend_the_shipped_ones() -> None:
    mine = ApiPrice(input_per_million_usd=1.0, output_per_million_usd=2.0)
    prices = api_prices({"gpt-4o": mine, "local-70b": mine})
    assert prices["gpt-4o"] == prices["local-70b"] == mine
    assert prices["gpt-4o-mini"] == DEFAULT_API_PRICES["gpt-4o-mini"]
