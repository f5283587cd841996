"""NATS request/reply: the requester gets legacy's reply unchanged; the candidate is compared."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import nats.errors
import orjson

from tests.nats.nats_support import Reply, client, nats_proxy, nats_server, responder
from tests.support import RunningProxy, eventually, records

SUBJECT = "context.update.request"
LEGACY = "legacy.context.update.request"
CANDIDATE = "candidate.context.update.request"


def _section(url: str, **extra: Any) -> dict[str, Any]:
    return {
        "server": {"url": url},
        "requests": [
            {
                "subject": SUBJECT,
                "legacy": LEGACY,
                "candidate": CANDIDATE,
                "domain": "context",
                "mirror": True,
                **extra,
            }
        ],
    }


def _compared(proxy: RunningProxy, *verdicts: str) -> float:
    """Exchanges of the subject compared with one of ``verdicts`` (any verdict without)."""
    return sum(
        proxy.metric(
            "shadowproxy_comparisons_total", route=SUBJECT, domain="context", verdict=verdict
        )
        for verdict in verdicts or ("match", "diverged", "noise", "error")
    )


def _json(value: object, headers: dict[str, str] | None = None) -> Reply:
    return Reply(lambda _: (orjson.dumps(value), headers))


class TestFidelity:
    """The requester gets legacy's payload and headers as legacy sent them."""

    async def test_reply_unchanged_and_compared(self, tmp_path: Path) -> None:
        """Payload bytes and headers reach the requester; the pair is compared as JSON."""
        body = b'{"context": {"id": 7, "scopes": ["a", "b"]},  "v": 1}'
        legacy_reply = Reply(lambda _: (body, {"X-Version": "1", "Nats-Msg-Id": "r-1"}))
        candidate_reply = _json({"v": 1, "context": {"scopes": ["a", "b"], "id": 7}})
        async with nats_server() as server:
            async with responder(server.url, LEGACY, legacy_reply) as legacy:
                async with responder(server.url, CANDIDATE, candidate_reply) as candidate:
                    async with nats_proxy(tmp_path, _section(server.url)) as proxy:
                        async with client(server.url) as requester:
                            reply = await requester.request(
                                SUBJECT, b'{"id": 7}', timeout=10, headers={"X-Request-Id": "q-1"}
                            )
                        await eventually(lambda: _compared(proxy, "match") == 1)
                        requests = proxy.metric(
                            "shadowproxy_requests_total",
                            route=SUBJECT,
                            method="REQUEST",
                            code_class="2xx",
                        )
                    assert candidate.seen[0].headers["X-Shadow-Request"] == "1"
                assert legacy.seen[0].data == b'{"id": 7}'
                assert legacy.seen[0].headers["X-Request-Id"] == "q-1"
        assert reply.data == body
        assert reply.headers == {"X-Version": "1", "Nats-Msg-Id": "r-1"}
        assert requests == 1
        (record,) = records(tmp_path, SUBJECT)
        assert (record["method"], record["path"], record["domain"]) == (
            "REQUEST",
            SUBJECT,
            "context",
        )
        assert record["client_request_id"] == "q-1"

    async def test_dead_candidate_costs_nothing(self, tmp_path: Path) -> None:
        """No candidate at all: the requester is answered; the exchange is a refused error."""
        async with nats_server() as server, responder(server.url, LEGACY, _json({"ok": 1})):
            async with nats_proxy(tmp_path, _section(server.url)) as proxy:
                async with client(server.url) as requester:
                    replies = [
                        await requester.request(SUBJECT, b"{}", timeout=10) for _ in range(3)
                    ]
                await eventually(lambda: _compared(proxy, "error") == 3)
        assert [r.data for r in replies] == [b'{"ok":1}'] * 3
        assert {r["candidate"]["error"] for r in records(tmp_path, SUBJECT)} == {"refused"}

    async def test_stuck_candidate_costs_nothing(self, tmp_path: Path) -> None:
        """A candidate that never answers: the requester is answered while it still holds."""
        hold = asyncio.Event()
        shadow = {"shadow": {"timeout_s": 0.5}}
        async with nats_server() as server, responder(server.url, LEGACY, _json({"ok": 1})):
            async with responder(server.url, CANDIDATE, Reply(hold=hold)) as candidate:
                async with nats_proxy(tmp_path, _section(server.url), shadow) as proxy:
                    async with client(server.url) as requester:
                        reply = await requester.request(SUBJECT, b"{}", timeout=10)
                    await candidate.wait_for(1)
                    assert not hold.is_set()
                    await eventually(
                        lambda: (
                            proxy.metric(
                                "shadowproxy_upstream_errors_total",
                                upstream="candidate",
                                reason="timeout",
                            )
                            == 1
                        )
                    )
        assert reply.data == b'{"ok":1}'

    async def test_hostile_candidate_costs_nothing(self, tmp_path: Path) -> None:
        """A candidate flooding replies of nonsense: one answer each, a structural parse verdict."""
        hostile = Reply(
            lambda _: (b"{not json" + b"x" * 4096, {"Content-Type": "application/json"}), copies=50
        )
        async with nats_server() as server, responder(server.url, LEGACY, _json({"ok": 1})):
            async with responder(server.url, CANDIDATE, hostile):
                async with nats_proxy(tmp_path, _section(server.url)) as proxy:
                    async with client(server.url) as requester:
                        replies = [
                            await requester.request(SUBJECT, b"{}", timeout=10) for _ in range(5)
                        ]
                    await eventually(
                        lambda: (
                            proxy.metric(
                                "shadowproxy_divergences_total",
                                route=SUBJECT,
                                domain="context",
                                **{"class": "structural"},
                            )
                            == 5
                        )
                    )
        assert [r.data for r in replies] == [b'{"ok":1}'] * 5
        kinds = {d["kind"] for r in records(tmp_path, SUBJECT) for d in r["differences"]}
        assert kinds == {"parse"}


class TestComparison:
    """Replies are compared as JSON with the engine, bytes otherwise, headers by rule."""

    async def _compared(
        self, tmp_path: Path, legacy: Reply, candidate: Reply, **extra: Any
    ) -> dict[str, Any]:
        async with nats_server() as server, responder(server.url, LEGACY, legacy):
            async with responder(server.url, CANDIDATE, candidate):
                async with nats_proxy(tmp_path, _section(server.url, **extra)) as proxy:
                    async with client(server.url) as requester:
                        await requester.request(SUBJECT, b"{}", timeout=10)
                    await eventually(lambda: _compared(proxy) == 1)
        (record,) = records(tmp_path, SUBJECT)
        return record

    async def test_json_values_and_listed_headers(self, tmp_path: Path) -> None:
        """A drifted value is semantic at its path; a listed header differs, others do not."""
        legacy = _json({"id": 7, "n": 1}, {"X-Version": "1", "X-Trace": "a"})
        candidate = _json({"id": 7, "n": 2}, {"X-Version": "2", "X-Trace": "b"})
        record = await self._compared(
            tmp_path, legacy, candidate, compare={"headers": ["x-version"]}
        )
        found = [(d["class"], d["kind"], d["path"]) for d in record["differences"]]
        assert found == [("semantic", "header", "x-version"), ("semantic", "value", "$.n")]

    async def test_bytes_compared_as_bytes(self, tmp_path: Path) -> None:
        """A payload that is not JSON is compared as bytes: one body difference."""
        record = await self._compared(
            tmp_path, Reply(lambda _: (b"\x00\x01", None)), Reply(lambda _: (b"\x00\x02", None))
        )
        assert [(d["kind"], d["path"]) for d in record["differences"]] == [("body", "$")]

    async def test_the_field_rules_apply(self, tmp_path: Path) -> None:
        """A payload string holding JSON, listed in json_strings, compares as JSON."""
        legacy = _json({"payload": '{"a": 1, "b": 2}'})
        candidate = _json({"payload": '{"b":2,"a":1}'})
        record = await self._compared(
            tmp_path, legacy, candidate, compare={"json_strings": ["$.payload"]}
        )
        assert (record["verdict"], record["equivalences"]) == ("match", {"json_string": 1})


class TestPolicy:
    """A request may write: it is mirrored only when its subject says so."""

    async def test_not_mirrored_by_default(self, tmp_path: Path) -> None:
        """Without mirror: true the candidate never sees the request (skip reason method)."""
        section = _section("")
        async with nats_server() as server, responder(server.url, LEGACY, _json({"ok": 1})):
            async with responder(server.url, CANDIDATE) as candidate:
                section = _section(server.url, mirror=False)
                async with nats_proxy(tmp_path, section) as proxy:
                    async with client(server.url) as requester:
                        reply = await requester.request(SUBJECT, b"{}", timeout=10)
                    await eventually(
                        lambda: (
                            proxy.metric("shadowproxy_shadow_skipped_total", reason="method") == 1
                        )
                    )
        assert reply.data == b'{"ok":1}'
        assert candidate.seen == []


class TestLegacySilent:
    """Without legacy's reply the requester gets none; the failure is counted."""

    async def test_no_legacy_responder(self, tmp_path: Path) -> None:
        """Nobody serves legacy's subject: the requester times out, legacy counts as refused."""
        async with nats_server() as server, nats_proxy(tmp_path, _section(server.url)) as proxy:
            async with client(server.url) as requester:
                try:
                    await requester.request(SUBJECT, b"{}", timeout=1)
                except nats.errors.TimeoutError:
                    answered = False
                else:
                    answered = True
            await eventually(
                lambda: (
                    proxy.metric(
                        "shadowproxy_requests_total",
                        route=SUBJECT,
                        method="REQUEST",
                        code_class="error",
                    )
                    == 1
                )
            )
            refused = proxy.metric(
                "shadowproxy_upstream_errors_total", upstream="legacy", reason="refused"
            )
            skipped = proxy.metric("shadowproxy_shadow_skipped_total", reason="legacy_failed")
        assert not answered
        assert (refused, skipped) == (1, 1)

    async def test_no_reply_subject_is_passed_on(self, tmp_path: Path) -> None:
        """A request published without a reply subject reaches legacy and is not mirrored."""
        async with nats_server() as server, responder(server.url, LEGACY) as legacy:
            async with responder(server.url, CANDIDATE) as candidate:
                async with nats_proxy(tmp_path, _section(server.url)) as proxy:
                    async with client(server.url) as publisher:
                        await publisher.publish(SUBJECT, b"fire")
                        await publisher.flush()
                        await legacy.wait_for(1)
                    await eventually(
                        lambda: (
                            proxy.metric("shadowproxy_shadow_skipped_total", reason="method") == 1
                        )
                    )
        assert legacy.seen[0].data == b"fire"
        assert candidate.seen == []


class TestBounds:
    """Requests in flight and pending are bounded: past the bound they are dropped and counted."""

    async def test_pending_requests_dropped_and_counted(self, tmp_path: Path) -> None:
        """One in flight, few pending: of ten, each is answered or counted as dropped."""
        hold = asyncio.Event()
        async with nats_server() as server:
            section = {**_section(server.url, mirror=False), "max_inflight": 1, "max_pending": 2}
            async with responder(server.url, LEGACY, Reply(hold=hold)) as legacy:
                async with nats_proxy(tmp_path, section) as proxy:
                    async with client(server.url) as requester:
                        answered: list[bytes] = []

                        async def answer(msg: Any) -> None:
                            answered.append(msg.data)

                        inbox = requester.new_inbox()
                        await requester.subscribe(inbox, cb=answer)
                        for n in range(10):
                            await requester.publish(SUBJECT, b"%d" % n, reply=inbox)
                        await requester.flush()
                        await legacy.wait_for(1)

                        def dropped() -> float:
                            return proxy.metric(
                                "shadowproxy_nats_dropped_total",
                                route=SUBJECT,
                                reason="pending_full",
                            )

                        await eventually(lambda: dropped() >= 1)
                        hold.set()
                        await eventually(lambda: len(answered) + dropped() == 10)
                    served = proxy.metric(
                        "shadowproxy_requests_total",
                        route=SUBJECT,
                        method="REQUEST",
                        code_class="2xx",
                    )
        assert served == len(answered) >= 2
        assert b"0" in answered


class TestAccounts:
    """Legacy may live on another account of the server (or another server)."""

    async def test_legacy_on_another_account(self, tmp_path: Path, monkeypatch: Any) -> None:
        """Requesters in APP, legacy in LEGACY: the proxy bridges them with legacy's credentials."""
        config = """
        accounts {
          APP: {users: [{user: app, password: app-pass}, {user: proxy, password: proxy-pass}]}
          LEGACY: {users: [{user: svc, password: svc-pass}, {user: bridge, password: bridge-pass}]}
        }
        """
        monkeypatch.setenv("NATS_APP_PASSWORD", "proxy-pass")
        monkeypatch.setenv("NATS_LEGACY_PASSWORD", "bridge-pass")
        async with nats_server(config, tmp_path) as server:
            section = _section(server.url, mirror=False)
            section["server"] = {
                "url": server.url,
                "user": "proxy",
                "password_env": "NATS_APP_PASSWORD",
            }
            section["legacy_server"] = {
                "url": server.url,
                "user": "bridge",
                "password_env": "NATS_LEGACY_PASSWORD",
            }
            legacy_login = {"user": "svc", "password": "svc-pass"}
            async with responder(server.url, LEGACY, _json({"from": "legacy"}), **legacy_login):
                async with nats_proxy(tmp_path, section):
                    async with client(server.url, user="app", password="app-pass") as requester:
                        reply = await requester.request(SUBJECT, b"{}", timeout=10)
        assert reply.data == b'{"from":"legacy"}'
        evidence = b"".join(p.read_bytes() for p in (tmp_path / "logs").glob("*"))
        assert b"bridge-pass" not in evidence and b"proxy-pass" not in evidence
