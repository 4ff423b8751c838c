"""Which accounts a process owns: `--shard N` of `--total-shards M`, by a consistent hash.

The unit of sharding is the account (its rate limit and its balance belong to it): an account
and all its apps belong to exactly one shard. An account is identified by its `name` (which
defaults to its api_key: `Account.label`), hashed with BLAKE2b to a stable 64-bit key (never
Python's `hash()`, which is salted per process) and placed by jump consistent hash (Lamping and
Veach, 2014): going from M to M+1 shards moves about 1/(M+1) of the accounts, all of them to the
new shard, where `key % M` would move about M/(M+1).

`N` may be a StatefulSet pod index: the shard is `N mod M`, so 2 x M pods run every shard twice.
The shard is a filter on the config (`select`): everything downstream (polls, call records,
balances, series) sees only the shard's own accounts. Pure functions and a frozen value only.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from exporter.config.model import Config, ConfigError

_MASK = (1 << 64) - 1
_MULTIPLIER = 2862933555777941757  # Jump hash's 64-bit linear congruential step.


def account_key(name: str) -> int:
    """A stable 64-bit key for an account name: the same in every process and every run."""
    digest = hashlib.blake2b(
        name.encode("utf-8", "surrogatepass"), digest_size=8, person=b"aivoice-shard"
    ).digest()
    return int.from_bytes(digest, "big")


def jump_hash(key: int, buckets: int) -> int:
    """Lamping and Veach's jump consistent hash: the bucket in [0, buckets) of a 64-bit key."""
    if buckets < 1:
        raise ValueError("buckets must be >= 1")
    key &= _MASK
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * _MULTIPLIER + 1) & _MASK
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def shard_of(name: str, total: int) -> int:
    """The shard, in [0, total), that owns the account called `name`."""
    return jump_hash(account_key(name), total)


@dataclass(frozen=True)
class Shard:
    """This process's place: `ordinal` as given by `--shard` (a pod index may exceed `total`),
    `total` from `--total-shards`. The default is the whole, unsharded config."""

    ordinal: int = 0
    total: int = 1

    @property
    def index(self) -> int:
        """The shard this process serves: `ordinal mod total`."""
        return self.ordinal % self.total

    @property
    def sharded(self) -> bool:
        return self.total > 1

    def owns(self, account: str) -> bool:
        """Whether the account called `account` (its `label`) belongs to this shard."""
        return not self.sharded or shard_of(account, self.total) == self.index

    def owners(self, account: str, peers: int) -> tuple[int, ...]:
        """The peer ordinals (indexes into `push.peers`) that serve `account`'s shard."""
        shard = shard_of(account, self.total)
        return tuple(i for i in range(peers) if i % self.total == shard)


UNSHARDED = Shard()


def parse_shard(shard: str, total: str) -> Shard:
    """`--shard` and `--total-shards` as given on the command line; a `ConfigError` naming the
    flag when either is not a whole number in range."""
    return Shard(ordinal=_whole(shard, "--shard", 0), total=_whole(total, "--total-shards", 1))


def _whole(text: str, flag: str, low: int) -> int:
    stripped = text.strip()
    if not stripped.isascii() or not stripped.isdigit() or len(stripped) > 9:
        raise ConfigError(flag, f"must be a whole number >= {low}, got {text!r}")
    value = int(stripped)
    if value < low:
        raise ConfigError(flag, f"must be >= {low}, got {text!r}")
    return value


def select(config: Config, shard: Shard) -> Config:
    """The config of this shard's accounts only (the whole config when unsharded)."""
    if not shard.sharded:
        return config
    owned = tuple(account for account in config.accounts if shard.owns(account.label))
    return dataclasses.replace(config, accounts=owned)


def app_accounts(config: Config) -> dict[str, str]:
    """app_id -> the `label` of the account it belongs to, over the whole config."""
    return {app_id: account.label for account in config.accounts for app_id in account.app_ids}


def check_peers(peers: Sequence[str], shard: Shard) -> None:
    """`push.peers` that can serve these flags, or a `ConfigError` on `push.peers`: every
    shard needs a peer, and this process (`--shard N`) is entry N."""
    if not peers:
        return
    if shard.ordinal >= len(peers):
        raise ConfigError(
            "push.peers",
            f"lists {len(peers)} processes, none for --shard {shard.ordinal}: list every "
            "process, in ordinal order",
        )
    if len(peers) < shard.total:
        raise ConfigError(
            "push.peers", f"lists {len(peers)} processes, fewer than --total-shards {shard.total}"
        )
