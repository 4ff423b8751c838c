"""The balance families: each account's balance by kind, whether it was read, and which account
each app belongs to.
"""

from __future__ import annotations

from exporter.balance.read import KINDS, BalanceSnapshot
from exporter.exposition.families import Fragments, encode, escape, value_text


def render_balance(snapshot: BalanceSnapshot) -> Fragments:
    """The lines of BALANCE_FAMILIES.

    # TYPE aivoice_account_balance_up gauge
    aivoice_account_balance_up{account="main"} 1.0
    # TYPE aivoice_account_balance gauge
    aivoice_account_balance{account="main",kind="balance"} 1234.5
    # TYPE aivoice_app_info gauge
    aivoice_app_info{account="main",app_id="LILIN888"} 1.0
    """
    up, amounts = [], []
    for account in snapshot.accounts:
        label = f'account="{escape(account.account)}"'
        up.append(f"aivoice_account_balance_up{{{label}}} {1.0 if account.up else 0.0}\n")
        if account.balance is None:  # Nothing known is not a balance of zero.
            continue
        values = account.balance.amounts()
        amounts += [
            f'aivoice_account_balance{{{label},kind="{kind}"}} {value_text(values[kind])}\n'
            for kind in KINDS
            if kind in values
        ]
    info = [
        f'aivoice_app_info{{account="{escape(account)}",app_id="{escape(app_id)}"}} 1.0\n'
        for app_id, account in snapshot.apps.items()
    ]
    return encode(up), encode(amounts), encode(info)
