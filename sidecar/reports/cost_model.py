"""Self-hosting vs API cost on measured traffic (pure arithmetic, no I/O).

Break-even, as the course puts it: GPU monthly cost / API cost per query = the monthly volume
above which the GPU is cheaper. Worked example: a $200/month GPU and $0.01 per API call break
even at 20,000 queries a month.
"""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.settings import ApiPrice

DAYS_PER_MONTH = 365 / 12

# OpenAI list prices per 1M tokens, as of 2024-08 (gpt-4o-2024-08-06, gpt-4o-mini-2024-07-18,
# fine-tuned gpt-4o-mini inference). Override or extend them in cost.api_prices.
PRICES_AS_OF = "2024-08 OpenAI list prices"
DEFAULT_API_PRICES = {
    "gpt-4o": ApiPrice(input_per_million_usd=2.50, output_per_million_usd=10.00),
    "gpt-4o-mini": ApiPrice(input_per_million_usd=0.15, output_per_million_usd=0.60),
    "ft:gpt-4o-mini": ApiPrice(input_per_million_usd=0.30, output_per_million_usd=1.20),
}


def api_prices(overrides: dict[str, ApiPrice]) -> dict[str, ApiPrice]:
    """The shipped list prices, overridden or extended by ``cost.api_prices``."""
    return {**DEFAULT_API_PRICES, **overrides}


@dataclass(frozen=True, slots=True)
class Traffic:
    requests: int
    prompt_tokens: int
    completion_tokens: int
    days: float  # how long the measurement covers

    @property
    def per_day(self) -> float:
        return self.requests / self.days if self.days > 0 else 0.0

    @property
    def per_month(self) -> float:
        return self.per_day * DAYS_PER_MONTH


@dataclass(frozen=True, slots=True)
class ApiOption:
    model: str
    cost_per_query_usd: float
    monthly_usd: float
    break_even_queries_per_month: float | None  # None when the API costs nothing per query
    hidden_saving_monthly_usd: float  # what a long system prompt would add on this API


def api_cost_per_query(price: ApiPrice, input_tokens: float, output_tokens: float) -> float:
    return (
        input_tokens * price.input_per_million_usd + output_tokens * price.output_per_million_usd
    ) / 1e6


def break_even(gpu_monthly_usd: float, api_cost_per_query_usd: float) -> float | None:
    """Queries per month above which self-hosting is cheaper."""
    if api_cost_per_query_usd <= 0:
        return None
    return gpu_monthly_usd / api_cost_per_query_usd


def compare(
    traffic: Traffic,
    gpu_monthly_usd: float,
    prices: dict[str, ApiPrice],
    system_prompt_tokens: int = 0,
) -> list[ApiOption]:
    """What the measured traffic would cost on each API model (with its long prompt added)."""
    if traffic.requests == 0:
        return []
    input_tokens = traffic.prompt_tokens / traffic.requests
    output_tokens = traffic.completion_tokens / traffic.requests
    options = []
    for model, price in prices.items():
        per_query = api_cost_per_query(price, input_tokens + system_prompt_tokens, output_tokens)
        hidden = system_prompt_tokens * price.input_per_million_usd / 1e6 * traffic.per_month
        options.append(ApiOption(model, per_query, per_query * traffic.per_month,
                                 break_even(gpu_monthly_usd, per_query), hidden))  # fmt: skip
    return options


def verdict(traffic: Traffic, gpu_monthly_usd: float, option: ApiOption) -> str:
    """One plain sentence for one API model."""
    monthly = traffic.per_month
    if option.break_even_queries_per_month is None:
        return f"{option.model}: free per query at these prices, so self-hosting never pays off."
    even = option.break_even_queries_per_month
    if monthly >= even:
        saving = option.monthly_usd - gpu_monthly_usd
        return (f"Self-hosting is cheaper than {option.model}: {monthly:,.0f} queries/month is above the "
                f"break-even of {even:,.0f}; it saves about ${saving:,.0f}/month.")  # fmt: skip
    return (f"{option.model} is cheaper at {monthly:,.0f} queries/month: self-hosting pays off above "
            f"{even:,.0f} queries/month (about {even / DAYS_PER_MONTH:,.0f}/day).")  # fmt: skip
