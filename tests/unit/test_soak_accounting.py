"""`make soak`'s accounting: it must see a duplicate, a loss or a mis-billing when there is one."""

from __future__ import annotations

from collections import Counter
from typing import Any

from benchmarks.soak import Accounting, accepted_posts, account


def post(channel: str, title: str, external_id: str | None, *, status: int = 200, duplicate: bool = False) -> Any:
    return {
        "channel": channel,
        "method": "POST",
        "status": status,
        "duplicate": duplicate,
        "id": external_id,
        "body": {"status": f"{title} Coupure d'eau"},
    }


def test_accepted_posts_count_distinct_posts_not_replays_or_failures() -> None:
    ids = {"0001": "pub_a", "0002": "pub_b"}
    received = [
        post("mastodon", "[soak-abc123-0001]", "1"),
        post("mastodon", "[soak-abc123-0001]", "1", duplicate=True),  # answered from the idempotency key
        post("wordpress", "[soak-abc123-0001]", "7"),
        post("wordpress", "[soak-abc123-0001]", "7"),  # the update of the post found by its slug
        post("x", "[soak-abc123-0002]", None, status=503),
        post("x", "[soak-abc123-0002]", "9"),
        post("x", "[soak-abc123-0002]", "10"),  # a second tweet: a duplicate
        post("x", "[soak-zzzzzz-0002]", "11"),  # another run's
    ]
    assert accepted_posts(received, ids, "abc123") == Counter(
        {("pub_a", "mastodon"): 1, ("pub_a", "wordpress"): 1, ("pub_b", "x"): 2}
    )


def clean() -> tuple[dict[str, tuple[str, dict[str, str]]], Counter[tuple[str, str]], Counter[tuple[str, str]]]:
    publications = {
        "pub_a": ("published", {"mastodon": "sent", "x": "sent"}),
        "pub_b": ("partially_published", {"mastodon": "sent", "x": "failed"}),
    }
    posts = Counter({("pub_a", "mastodon"): 1, ("pub_a", "x"): 1, ("pub_b", "mastodon"): 1})
    return publications, posts, Counter(posts)


def test_a_clean_run_passes() -> None:
    publications, posts, billed = clean()
    result = account(publications, posts, billed, [("pub_b", "x")])
    assert result.ok
    assert result.last_line() == "lost: 0, duplicated: 0, publications: 2, deliveries: 4"


def test_a_fabricated_duplicate_is_flagged() -> None:
    publications, posts, billed = clean()
    posts[("pub_a", "x")] = 2
    result = account(publications, posts, billed, [])
    assert not result.ok
    assert result.duplicated == 1
    assert result.last_line().startswith("lost: 0, duplicated: 1,")


def test_losses_are_counted() -> None:
    publications, posts, billed = clean()
    publications["pub_c"] = ("publishing", {"mastodon": "sending"})  # never final, left in a DLQ
    del posts[("pub_a", "x")]  # reported sent, never posted
    del billed[("pub_a", "x")]
    result = account(publications, posts, billed, [("pub_c", "mastodon")])
    assert result.not_final == [("pub_c", "*"), ("pub_c", "mastodon")]
    assert result.sent_without_post == [("pub_a", "x")]
    assert result.dlq_unreported == [("pub_c", "mastodon")]
    assert result.lost == 4


def test_billing_and_status_mismatches_fail_the_run() -> None:
    publications, posts, billed = clean()
    del billed[("pub_a", "mastodon")]
    posts[("pub_b", "x")] = 1  # the post exists, the commune is told it failed (and it was not billed)
    result = account(publications, posts, billed, [])
    assert isinstance(result, Accounting)
    assert result.unbilled == [("pub_a", "mastodon"), ("pub_b", "x")]
    assert result.posted_not_sent == [("pub_b", "x")]
    assert result.lost == 0
    assert result.duplicated == 0
    assert not result.ok


def test_the_sandbox_chaos_draws_each_kind_of_fault() -> None:
    from infra.local.sandbox import Chaos

    always_down = Chaos(channels=frozenset({"x"}), error_rate=1.0, seed=1)
    assert {always_down.draw("x").status for _ in range(30)} <= {500, 502, 503}  # type: ignore[union-attr]
    slow = Chaos(channels=frozenset({"x"}), timeout_rate=1.0, timeout_seconds=2.5, seed=1)
    fault = slow.draw("x")
    assert fault is not None
    assert (fault.status, fault.delay_seconds) == (None, 2.5)
    burst = Chaos(channels=frozenset({"x"}), burst_rate=1.0, burst_length=3, retry_after=2, seed=1)
    assert [(f.status, f.retry_after) for f in (burst.draw("x"), burst.draw("x"), burst.draw("x"))] == [(429, 2)] * 3
    calm = Chaos(channels=frozenset({"x"}), seed=1)
    assert calm.draw("x") is None
    mixed = Chaos(channels=frozenset({"x"}), error_rate=0.2, timeout_rate=0.05, seed=7)
    for _ in range(2000):
        mixed.draw("x")
    assert 300 < mixed.drawn["5xx"] < 500
    assert 50 < mixed.drawn["timeout"] < 160


def test_a_delivery_on_its_way_is_not_final_but_not_mismatched() -> None:
    publications, posts, billed = clean()
    publications["pub_c"] = ("publishing", {"mastodon": "retrying"})
    posts[("pub_c", "mastodon")] = 1  # posted by an attempt whose answer timed out: the retry will say sent
    result = account(publications, posts, billed, [])
    assert result.not_final == [("pub_c", "*"), ("pub_c", "mastodon")]
    assert result.mismatched == 0
