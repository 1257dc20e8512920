"""``tracker doctor``: check everything the configuration promises against the real services.

One line per check, ``ok``, ``warn`` (the daemon runs, but look) or ``FAIL`` (the daemon would
not do its job), with what to do after ``->``; then a summary line. Checked, each bounded by
``--timeout``:

- the database: reachable, migrations current, size, the backlog of due shipments;
- each store: token valid, API version supported, the scopes the daemon needs, plan and cost
  bucket, webhook subscriptions for ``web.public_url``;
- each carrier: base URL reachable, credentials accepted, a test number answered, budget
  plausible against the carrier's published quota;
- the web server: the address can be listened on (or a daemon already serves it), who can
  reach it, the public URL.

Exit code 0 when no check failed (warnings allowed), 1 when one did, 2 when the configuration
itself does not load (each problem is printed as a ``FAIL`` line). Secrets never appear: every
line is masked with the configuration's secret values, as the logs are.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from carriers.registry import available_factories
from tracker.config import Config
from tracker.config_load import ConfigError, load_config
from tracker.doctor_checks import Check, Verdict, describe_error, fail
from tracker.doctor_checks.carriers import check_budget, check_carrier_api
from tracker.doctor_checks.database import DatabaseReport, check_database
from tracker.doctor_checks.stores import check_store
from tracker.doctor_checks.web import check_web
from tracker.logs import configure_logging, redact, secret_values
from tracker.loop import run as run_loop

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CONFIG = 2
DEFAULT_TIMEOUT = 15.0


async def diagnose(config: Config, *, timeout: float = DEFAULT_TIMEOUT) -> list[Check]:
    """Every check, in print order: database, stores, carriers, web. Never raises."""
    factories = available_factories()
    async with aiohttp.ClientSession() as session:
        database = asyncio.create_task(check_database(config.database, timeout))
        stores = {
            f"store {shop.domain}": asyncio.create_task(
                check_store(index, config, session, timeout)
            )
            for index, shop in enumerate(config.shops)
        }
        carriers = {
            code: asyncio.create_task(
                check_carrier_api(code, settings, factories[code], session, timeout)
            )
            for code, settings in config.carriers.items()
        }
        web = asyncio.create_task(check_web(config.web, session, timeout))
        try:
            report = await database
        except Exception as exc:  # a bug in a check is reported, not raised
            report = DatabaseReport([_crashed("database", exc, timeout)])
        checks = list(report.checks)
        for subject, store in stores.items():
            checks.extend(await _guarded(subject, store, timeout))
        for code, task in carriers.items():
            checks.extend(await _guarded(f"carrier {code}", task, timeout))
            settings = config.carriers[code]
            checks.append(check_budget(code, settings, factories[code], config.polling, report.use))
        checks.extend(await _guarded("web", web, timeout))
    if not config.shops:
        checks.append(fail("config", "no shops configured: nothing to track", "add shops[]"))
    if not config.carriers:
        checks.append(
            fail("config", "no carriers configured: nothing would be polled", "add carriers.<code>")
        )
    return checks


async def _guarded(subject: str, task: asyncio.Task[list[Check]], timeout: float) -> list[Check]:
    try:
        return await task
    except Exception as exc:  # a bug in a check is reported, not raised
        return [_crashed(subject, exc, timeout)]


def _crashed(subject: str, exc: Exception, timeout: float) -> Check:
    return fail(subject, f"the check itself failed: {describe_error(exc, timeout)}")


def summary(checks: Sequence[Check]) -> str:
    counts = Counter(check.verdict for check in checks)
    failed = counts[Verdict.FAIL]
    verdict = (
        "the daemon has everything it needs"
        if not failed
        else f"{failed} {'check' if failed == 1 else 'checks'} failed"
    )
    return (
        f"{len(checks)} checks: {counts[Verdict.OK]} ok, {counts[Verdict.WARN]} warn, "
        f"{failed} FAIL: {verdict}"
    )


def render(checks: Sequence[Check], *, as_json: bool, secrets: Sequence[str] = ()) -> str:
    """The report: one line per check and the summary, or one JSON object."""
    if as_json:
        counts = Counter(check.verdict for check in checks)
        document = {
            "ok": counts[Verdict.FAIL] == 0,
            "counts": {
                "ok": counts[Verdict.OK],
                "warn": counts[Verdict.WARN],
                "fail": counts[Verdict.FAIL],
            },
            "checks": [
                {
                    "subject": check.subject,
                    "verdict": check.verdict.value,
                    "detail": check.detail,
                    "fix": check.fix,
                }
                for check in checks
            ],
        }
        return redact(json.dumps(document, indent=2), secrets)
    lines = [check.line() for check in checks] + [summary(checks)]
    return "\n".join(redact(line, secrets) for line in lines)


def doctor_command(
    config_path: Path | None,
    *,
    as_json: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    log_level: str | None = None,
) -> int:
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        where = config_path or "config.yaml"
        checks = [
            fail("config", line, f"fix {where} (tracker check-config shows the same)")
            for line in str(exc).splitlines()
            if line.strip()
        ]
        print(render(checks, as_json=as_json))
        return EXIT_CONFIG
    secrets = secret_values(config)
    # The checks say what went wrong; log lines (retries, refusals) only with --log-level.
    configure_logging(log_level or "CRITICAL", json_lines=config.log.json_lines, secrets=secrets)
    checks = run_loop(diagnose(config, timeout=timeout))
    print(render(checks, as_json=as_json, secrets=secrets))
    sys.stdout.flush()
    return EXIT_FAILED if any(check.verdict is Verdict.FAIL for check in checks) else EXIT_OK
