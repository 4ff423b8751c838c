"""Accounts spread over shards by a consistent hash of their names, and the flags' checks."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

from exporter.config.model import Account, Config, ConfigError
from exporter.config.shard import (
    Shard,
    account_key,
    app_accounts,
    check_peers,
    jump_hash,
    parse_shard,
    select,
    shard_of,
)

NAMES = [f"account-{i}" for i in range(200)]


def test_growing_from_4_to_5_shards_moves_at_most_30_percent_of_200_accounts() -> None:
    moved = [name for name in NAMES if shard_of(name, 4) != shard_of(name, 5)]
    assert len(moved) <= 0.30 * len(NAMES)


def test_accounts_that_move_all_move_to_the_new_shard() -> None:
    for name in NAMES:
        before, after = shard_of(name, 4), shard_of(name, 5)
        assert after in (before, 4)


def test_no_shard_holds_more_than_35_percent_of_200_accounts_at_4() -> None:
    counts = Counter(shard_of(name, 4) for name in NAMES)
    assert set(counts) == {0, 1, 2, 3}
    assert max(counts.values()) <= 0.35 * len(NAMES)


def test_modulo_hashing_would_move_most_accounts() -> None:
    """The baseline a consistent hash is for: key % M moves about M/(M+1) of them."""
    moved = [name for name in NAMES if account_key(name) % 4 != account_key(name) % 5]
    assert len(moved) > 0.6 * len(NAMES)


def test_the_key_is_the_same_in_another_process() -> None:
    """Never Python's salted hash(): every process must place an account alike."""
    code = "from exporter.config.shard import account_key; print(account_key('account-7'))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(other.stdout) == account_key("account-7")


def test_jump_hash_stays_in_range_and_refuses_no_buckets() -> None:
    assert [jump_hash(key, 1) for key in (0, 1, 2**64 - 1)] == [0, 0, 0]
    assert all(0 <= jump_hash(key, 7) < 7 for key in range(1000))
    with pytest.raises(ValueError):
        jump_hash(1, 0)


def test_the_shard_is_the_ordinal_modulo_the_total() -> None:
    assert Shard(ordinal=4, total=3).index == 1
    assert Shard(ordinal=4, total=3).sharded
    assert not Shard().sharded


def test_unsharded_owns_every_account() -> None:
    assert all(Shard().owns(name) for name in NAMES)


def test_every_account_is_owned_by_exactly_one_shard() -> None:
    for name in NAMES[:50]:
        assert sum(Shard(i, 3).owns(name) for i in range(3)) == 1


def test_owners_are_the_peer_ordinals_of_the_accounts_shard() -> None:
    shard = Shard(ordinal=0, total=3)
    owner = shard_of("account-1", 3)
    assert shard.owners("account-1", 6) == (owner, owner + 3)


def config(*names: str) -> Config:
    return Config(
        accounts=tuple(
            Account(api_key=f"key{i}", api_secret="s", app_ids=(f"APP_{i}",), name=name)
            for i, name in enumerate(names)
        )
    )


def test_select_keeps_only_the_shards_accounts_with_all_their_apps() -> None:
    whole = config(*NAMES[:30])
    parts = [select(whole, Shard(i, 3)) for i in range(3)]
    assert sorted(a.label for part in parts for a in part.accounts) == sorted(NAMES[:30])
    for i, part in enumerate(parts):
        assert all(shard_of(a.label, 3) == i for a in part.accounts)


def test_select_without_sharding_is_the_config_itself() -> None:
    whole = config("a", "b")
    assert select(whole, Shard()) is whole


def test_the_account_name_defaults_to_the_api_key() -> None:
    whole = Config(accounts=(Account(api_key="bDqJFiq9", api_secret="s", app_ids=("A",)),))
    assert app_accounts(whole) == {"A": "bDqJFiq9"}
    assert Shard(0, 4).owns("bDqJFiq9") == (shard_of("bDqJFiq9", 4) == 0)


@pytest.mark.parametrize(
    ("shard", "total", "flag"),
    [
        ("-1", "2", "--shard"),
        ("1.5", "2", "--shard"),
        ("one", "2", "--shard"),
        ("", "2", "--shard"),
        ("0", "0", "--total-shards"),
        ("0", "-3", "--total-shards"),
        ("0", "x", "--total-shards"),
        ("0", "99999999999", "--total-shards"),
    ],
)
def test_bad_flags_raise_a_config_error_naming_the_flag(shard: str, total: str, flag: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_shard(shard, total)
    assert raised.value.field == flag
    assert "\n" not in str(raised.value)


def test_good_flags_parse() -> None:
    assert parse_shard("5", "3") == Shard(ordinal=5, total=3)
    assert parse_shard("0", "1") == Shard()


@pytest.mark.parametrize(
    ("peers", "shard", "problem"),
    [
        (("http://a", "http://b"), Shard(2, 2), "none for --shard 2"),
        (("http://a",), Shard(0, 2), "fewer than --total-shards 2"),
    ],
)
def test_peers_that_cannot_serve_the_flags_are_a_config_error(
    peers: tuple[str, ...], shard: Shard, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        check_peers(peers, shard)
    assert raised.value.field == "push.peers"


def test_no_peers_or_enough_peers_pass() -> None:
    check_peers((), Shard(5, 3))
    check_peers(tuple(f"http://p{i}" for i in range(6)), Shard(5, 3))
