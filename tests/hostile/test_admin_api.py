"""The admin port under schemathesis and hypothesis: no 5xx, the token guards all but the probes.

The admin app serves no OpenAPI document (``openapi_config=None`` in ``sidecar/server/admin.py``), so
this module builds one from the same route handlers (a second ``create_admin_app``, rendered by
litestar) and checks it covers every route the live admin app has. Schemathesis generates cases
from it; they run against the live admin server on port 0, on SQLite and on Postgres. Report
query parameters get a second, targeted hypothesis run (durations, ISO times, free text).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from litestar import Litestar
from litestar.openapi import OpenAPIConfig
from schemathesis.checks import not_a_server_error

from sidecar.metrics import SidecarMetrics
from sidecar.reports.base import REPORTS
from sidecar.reports.catalog import load_reports
from sidecar.server.admin import Readiness, create_admin_app
from sidecar.testing.harness import RunningSidecar, running_sidecar
from sidecar.testing.servers import RunningServer
from tests.helpers import sidecar_settings, wait_for_rows
from tests.hostile.conftest import count_case, examples
from tests.hostile.wire import exchange, request

TOKEN = "admin-token-for-fuzzing"
AUTHORISED = {"authorization": f"Bearer {TOKEN}"}
PUBLIC_PATHS = {"/healthz", "/readyz"}  # the probes (sidecar/server/admin.py: all but the probes)


def admin_openapi_document() -> dict[str, Any]:
    """OpenAPI 3.1 for the admin routes, with the known report names as path examples."""
    app = create_admin_app(SidecarMetrics(), lambda: Readiness(True, {}), token=TOKEN)
    handlers = [
        handler
        for route in app.routes
        for handler in route.route_handlers  # type: ignore[union-attr]
        if handler.handler_name != "options_handler"  # litestar adds these per route
    ]
    config = OpenAPIConfig(title="sidecar admin", version="1")
    document = Litestar(route_handlers=handlers, openapi_config=config).openapi_schema.to_schema()
    for parameter in document["paths"]["/reports/{name}"]["get"]["parameters"]:
        if parameter["name"] == "name":  # a known report half the time, anything otherwise
            parameter["schema"] = {"anyOf": [{"enum": report_names()}, {"type": "string"}]}
    return document


def report_names() -> list[str]:
    load_reports()
    return sorted(REPORTS)


def live_paths(sidecar: RunningSidecar) -> set[str]:
    routes = sidecar.sidecar.admin_app.routes
    return {route.path.replace("{name:str}", "{name}") for route in routes}


@pytest.fixture(scope="module")
def admin_sidecar(
    fake_upstream: RunningServer,
    module_backend_url: str,
    tmp_path_factory: pytest.TempPathFactory,
    http: httpx.Client,
) -> Iterator[RunningSidecar]:
    """A sidecar with an admin token and one logged request, so reports have a row to show."""
    settings_ = sidecar_settings(
        fake_upstream.url,
        module_backend_url,
        tmp_path_factory.mktemp("spool"),
        admin={"token": TOKEN},
    )
    with running_sidecar(settings_) as sidecar:
        chat = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
        http.post(f"{sidecar.proxy_url}/v1/chat/completions", json=chat)
        wait_for_rows(module_backend_url, 1)
        yield sidecar


def run_schemathesis(
    sidecar: RunningSidecar, mode: schemathesis.GenerationMode, count: int
) -> None:
    schema = schemathesis.openapi.from_dict(admin_openapi_document())
    strategy = schema.as_strategy(generation_mode=mode)
    session = requests.Session()

    @settings(examples(count), suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def check(case: schemathesis.Case[Any]) -> None:
        count_case(f"admin API: schemathesis {mode.value} cases, no 5xx")
        response = case.call(
            base_url=sidecar.admin_url, session=session, headers=AUTHORISED, timeout=30
        )
        case.validate_response(response, checks=[not_a_server_error])

    with session:
        check()


def test_the_openapi_document_covers_every_live_admin_route(admin_sidecar: RunningSidecar) -> None:
    assert set(admin_openapi_document()["paths"]) == live_paths(admin_sidecar)


def test_schemathesis_positive_cases_get_no_5xx_from_the_admin_port(
    admin_sidecar: RunningSidecar,
) -> None:
    run_schemathesis(admin_sidecar, schemathesis.GenerationMode.POSITIVE, 120)


def test_schemathesis_negative_cases_get_no_5xx_from_the_admin_port(
    admin_sidecar: RunningSidecar,
) -> None:
    # Negative generation costs ~70 ms a case in schemathesis itself, so fewer of them.
    run_schemathesis(admin_sidecar, schemathesis.GenerationMode.NEGATIVE, 30)


WRONG_CREDENTIALS = {
    "none": {},
    "wrong token": {"authorization": "Bearer not-the-token"},
    "token as basic": {"authorization": f"Basic {TOKEN}"},
    "token without a scheme": {"authorization": TOKEN},
    "token prefix": {"authorization": f"Bearer {TOKEN[:-1]}"},
    "token in another header": {"x-admin-token": TOKEN},
    "token in the query": {},  # sent as ?token= below
}


def test_every_admin_route_but_the_probes_requires_the_token(
    admin_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    paths = {path.replace("{name}", "traffic") for path in live_paths(admin_sidecar)}
    assert paths >= PUBLIC_PATHS
    for path in sorted(paths):
        url = f"{admin_sidecar.admin_url}{path}"
        for name, headers in WRONG_CREDENTIALS.items():
            count_case("admin API: routes x wrong credentials")
            params = {"token": TOKEN} if name == "token in the query" else {}
            status = http.get(url, headers=headers, params=params).status_code
            if path in PUBLIC_PATHS:
                assert status in {200, 503}, (path, name, status)
            else:
                assert status == 401, (path, name, status)
        assert http.get(url, headers=AUTHORISED).status_code in {200, 503}, path


def durations(max_digits: int) -> st.SearchStrategy[str]:
    return st.builds(
        "{}{}{}".format,
        st.integers(0, 10**max_digits - 1),
        st.sampled_from(["", " "]),
        st.sampled_from("smhdw"),
    )


_NO_NUL = st.characters(codec="utf-8", exclude_characters="\x00")
moments = st.one_of(
    durations(5),  # at most 99999w, ~1900 years back; further ones are the xfail below
    st.datetimes(min_value=datetime(1900, 1, 1)).map(datetime.isoformat),
    st.text(_NO_NUL, max_size=25),
)


def test_report_query_parameters_get_200_or_a_4xx(
    admin_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    names = report_names()

    @examples(150)
    @given(
        name=st.sampled_from(names),
        query=st.fixed_dictionaries(
            {},
            optional={
                "since": moments,
                "until": moments,
                "model": st.text(_NO_NUL, max_size=20),
                "adapter": st.text(_NO_NUL, max_size=20),
                "by": st.sampled_from(["hour", "day", "week", ""]),
                "format": st.sampled_from(["json", "csv", "xml"]),
            },
        ),
    )
    def check(name: str, query: dict[str, str]) -> None:
        count_case("admin API: report query parameters (hypothesis), no 5xx")
        response = http.get(
            f"{admin_sidecar.admin_url}/reports/{name}", params=query, headers=AUTHORISED
        )
        assert response.status_code in {200, 400}, (name, query, response.text)

    check()


def test_a_report_window_beyond_the_calendar_gets_400(
    admin_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    url = f"{admin_sidecar.admin_url}/reports/traffic"
    statuses = {
        http.get(url, params=params, headers=AUTHORISED).status_code
        for params in ({"since": "99999999999h"}, {"until": "9999-12-31T23:59:59-23:00"})
    }
    assert statuses == {400}


def test_a_nul_in_a_report_filter_gets_200_or_400(
    admin_sidecar: RunningSidecar, http: httpx.Client
) -> None:
    url = f"{admin_sidecar.admin_url}/reports/traffic"
    for params in ({"model": "a\x00b"}, {"adapter": "\x00"}):
        assert http.get(url, params=params, headers=AUTHORISED).status_code in {200, 400}


MALFORMED_AUTHORIZATION = {
    "non-ASCII byte": b"Bearer caf\xe9",
    "token then a non-ASCII byte": b"Bearer " + TOKEN.encode() + b"\x80",
    "UTF-8 token": "Bearer ☃".encode(),
    "invalid UTF-8 only": b"\xff\xfe",
    "non-ASCII scheme": b"B\xe9arer " + TOKEN.encode(),
    "scheme only": b"Bearer",
    "long non-ASCII": b"Bearer " + b"\xe9" * 6000,
}


def test_malformed_authorization_headers_get_401_on_every_token_protected_route(
    admin_sidecar: RunningSidecar,
) -> None:
    """Raw bytes a client library would refuse to send; they used to answer 500
    (``secrets.compare_digest`` refuses non-ASCII text)."""
    port = int(admin_sidecar.admin_url.rsplit(":", 1)[1])
    paths = {path.replace("{name}", "traffic") for path in live_paths(admin_sidecar)}
    for path in sorted(paths - PUBLIC_PATHS):
        for name, value in MALFORMED_AUTHORIZATION.items():
            count_case("admin API: routes x malformed Authorization bytes, 400/401")
            headers = [(b"authorization", value), (b"connection", b"close")]
            received = exchange(port, request("GET", path, headers))
            assert received.statuses in ([401], [400]), (path, name, received.statuses)
