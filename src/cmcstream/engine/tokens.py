"""Well-known token contracts: the quote tokens DEX prices are converted to USD through.

A pool's USD prices come from whichever side is a quote token: stablecoins at
their own market price, wrapped native coins at the native coin's price
(``market@crypto_latest_price`` of its CoinMarketCap id). These are the real
contracts of those tokens on each chain; the DEX simulator uses the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["NATIVE", "REFERENCE_TOKENS", "ReferenceToken", "reference_token"]


@dataclass(frozen=True, slots=True)
class ReferenceToken:
    """A token whose USD price is known from the market.

    Attributes:
        chain: CoinMarketCap platform id.
        address: contract (EVM, lower-case) or mint (Solana).
        symbol: ticker.
        name: display name.
        decimals: on-chain decimals.
        cmc_id: the CoinMarketCap id whose market price is this token's price.
        quote_rank: preference as the quote side of a pair: stablecoins 0,
            wrapped native coins 1, other majors 2 (lower quotes first).
    """

    chain: int
    address: str
    symbol: str
    name: str
    decimals: int
    cmc_id: int
    quote_rank: int


def _t(
    chain: int, address: str, symbol: str, name: str, decimals: int, cmc_id: int, rank: int
) -> ReferenceToken:
    return ReferenceToken(chain, address, symbol, name, decimals, cmc_id, rank)


REFERENCE_TOKENS: Final[tuple[ReferenceToken, ...]] = (
    # Ethereum
    _t(1, "0xdac17f958d2ee523a2206206994597c13d831ec7", "USDT", "Tether USD", 6, 825, 0),
    _t(1, "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48", "USDC", "USD Coin", 6, 3408, 0),
    _t(1, "0x6b175474e89094c44da98b954eedeac495271d0f", "DAI", "Dai Stablecoin", 18, 4943, 0),
    _t(1, "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2", "WETH", "Wrapped Ether", 18, 1027, 1),
    _t(1, "0x2260fac5e5542a773aa44fbcfedf7c193bc2c599", "WBTC", "Wrapped BTC", 8, 3717, 2),
    # BSC
    _t(14, "0x55d398326f99059ff775485246999027b3197955", "USDT", "Tether USD", 18, 825, 0),
    _t(14, "0x8ac76a51cc950d9822d68b83fe1ad97b32cd580d", "USDC", "USD Coin", 18, 3408, 0),
    _t(14, "0xbb4cdb9cbd36b01bd1cbaebf2de08d9173bc095c", "WBNB", "Wrapped BNB", 18, 1839, 1),
    _t(
        14, "0x2170ed0880ac9a755fd29b2688956bd959f933f8", "ETH", "Binance-Peg Ethereum", 18, 1027, 2
    ),
    # Solana
    _t(16, "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v", "USDC", "USD Coin", 6, 3408, 0),
    _t(16, "Es9vMFrzaCERmJfrF4H2FYD4KCoNkY11McCe8BenwNYB", "USDT", "Tether USD", 6, 825, 0),
    _t(16, "So11111111111111111111111111111111111111112", "SOL", "Wrapped SOL", 9, 5426, 1),
    # Base
    _t(199, "0x833589fcd6edb6e08f4c7c32d4f71b54bda02913", "USDC", "USD Coin", 6, 3408, 0),
    _t(199, "0x4200000000000000000000000000000000000006", "WETH", "Wrapped Ether", 18, 1027, 1),
)

# The native coin of each chain: its CoinMarketCap id and decimals (for native balances).
NATIVE: Final[dict[int, tuple[str, int, int]]] = {
    1: ("ETH", 1027, 18),
    14: ("BNB", 1839, 18),
    16: ("SOL", 5426, 9),
    199: ("ETH", 1027, 18),
    20: ("POL", 28321, 18),
    51: ("ETH", 1027, 18),
    42: ("ETH", 1027, 18),
    28: ("AVAX", 5805, 18),
    1958: ("TRX", 1958, 6),
}

_BY_KEY: Final = {(t.chain, t.address): t for t in REFERENCE_TOKENS}


def reference_token(chain: int, address: str) -> ReferenceToken | None:
    """The reference token at ``address`` on ``chain``, if it is one."""
    return _BY_KEY.get((chain, address))
