"""An EVM chain as a DEX source: blocks in, the engine's raw events out.

**Ingest.** :meth:`EvmSource.start` connects over WebSocket JSON-RPC, back-fills
from ``from_block`` with ``eth_getLogs`` paged by block range, then follows
``eth_subscribe("newHeads")``: each head makes the source read every new
block up to ``head - confirmations``, the block itself (its hash, parent
hash, time and its transactions' senders) and its logs by block hash
(``eth_getLogs`` with ``blockHash``, so a log always belongs to the block the
source believes canonical). A block is only read once it has
``confirmations`` blocks on top of it.

**Decode.** Uniswap V2 ``PairCreated``, ``Swap``, ``Mint``, ``Burn`` and
``Sync``, Uniswap V3 ``PoolCreated``, ``Initialize``, ``Swap``, ``Mint``,
``Burn`` and ``Collect``, ERC-20 ``Transfer`` (and WETH9
``Deposit``/``Withdrawal``) become :mod:`cmcstream.engine.events`: a token's
metadata comes from ``eth_call`` (cached); a pair seen trading before the
source saw its creation is adopted with its reserves as of the block before;
the senders of the transactions that touched a pool get their native balance
read after the block. A ``Sync`` whose reserves differ from what the pool's
events add up to (a donation followed by ``sync()``, a fee-on-transfer token)
becomes a liquidity change of the difference, so the engine's reserves stay
the chain's.

**Uniswap V3.** A pool enters the engine at its ``Initialize``, with the
price it states; each swap carries the pool's ``sqrtPriceX96`` after it, so
prices are the pool's own. A V3 pool's reserves are the tokens it holds
(``balanceOf``, what the chain says it is worth) less what burned positions
are owed and have not collected: a ``Burn`` removes its amounts, a
``Collect`` takes them out of what is owed, and whatever it takes beyond
(the fees) is a removal of its own. After each block, a V3 pool whose
token transfers do not add up to what its events moved is reconciled with
its ``balanceOf``, as a V2 pair is with its ``Sync``: tokens that reached it
outside its events (a donation, a flash loan's fee) become a liquidity
change. The fee tier is the pool's
``fee_bps``.

**Reorgs.** The source remembers the hash of each block it read. When a new
block's parent is not the block it holds at that height, or the block it
holds at its tip is no longer canonical, it walks back to the last block
both chains share and forgets every event of the blocks above: the events
not yet handed out are dropped, and when some were, :meth:`take_rewind`
tells the feed to rebuild its engine from :meth:`history` (the events of
the canonical blocks). Then it reads the new canonical blocks as usual.

**Bounded history.** Events below the blocks kept for reorg checks and
older than ``keep_ms`` are folded into the state they leave
(:class:`~cmcstream.sources.evm.folded.Folded`), so what the source keeps is
that state, the last ``keep_ms`` of events and the last ``reorg_depth``
blocks' hashes.

**Pull, with a wake-up.** The feed pulls events as for any
:class:`~cmcstream.sources.base.Source` (:meth:`backfill`, :meth:`step`); a
chain pushes, so :meth:`wait` returns when events are ready, and the feed
steps then instead of at its next tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from web3 import AsyncWeb3, WebSocketProvider
from web3.utils.subscriptions import NewHeadsSubscription, NewHeadsSubscriptionContext

from cmcstream.engine.events import (
    DexEvent,
    LiquidityChanged,
    NativeBalanceChanged,
    PoolCreated,
    Swap,
    TokenListed,
    Transfer,
)
from cmcstream.engine.units import DAY_MS
from cmcstream.sources.evm.decode import CREATIONS, TOPICS, Decoded, decode
from cmcstream.sources.evm.folded import Folded
from cmcstream.sources.evm.metadata import ChainReader

__all__ = ["EvmSource"]

logger = logging.getLogger(__name__)

_ZERO: Final = "0x" + "00" * 20
_MAX_FRAME: Final = 64 * 2**20  # a page of logs can be megabytes
_CLOSE_S: Final = 5.0
_V3_DEX: Final = "uniswap-v3"


@dataclass(slots=True)
class _Block:
    number: int
    hash: bytes
    offset: int  # where its events start in the journal


@dataclass(slots=True)
class _Pool:
    address: str
    token0: str
    token1: str
    r0: int = 0  # reserves as the emitted events add up
    r1: int = 0
    sync: tuple[int, int] | None = None  # a Sync not yet matched by its event
    offset: int = 0  # journal offset of its creation
    owed0: int = 0  # V3: burned, not yet collected
    owed1: int = 0
    v3: bool = False


@dataclass(frozen=True, slots=True)
class _Owed:
    """A change of what a V3 pool owes burned positions, where the journal stood."""

    offset: int
    pool: str
    d0: int
    d1: int


@dataclass(slots=True)
class _Stats:
    blocks: int = 0
    logs: int = 0
    events: int = 0
    reorgs: int = 0
    rewound_blocks: int = 0
    heads: int = 0
    head_ms: dict[int, float] = field(default_factory=dict)  # block -> monotonic ms of its head


class EvmSource:
    """Uniswap V2 and V3 pools and their tokens on one EVM chain, as raw DEX events.

    Args:
        url: the node's WebSocket JSON-RPC endpoint (``ws://`` or ``wss://``).
        platform_id: the CoinMarketCap platform id the events are stamped with.
        from_block: first block to back-fill; ``None`` starts at the head.
        confirmations: blocks a block must have on top before it is read.
        page_blocks: block range of one back-fill ``eth_getLogs`` page.
        reorg_depth: how many recent block hashes are kept to detect reorgs.
        keep_ms: events final and older than this (by block time) are folded
            into the state they leave (:mod:`~cmcstream.sources.evm.folded`);
            the default outlasts the engine's longest window (7 days).
        dex: the ``dex`` name given to the V2 pools (V3 pools are ``uniswap-v3``).
    """

    def __init__(
        self,
        url: str,
        platform_id: int,
        *,
        from_block: int | None = None,
        confirmations: int = 0,
        page_blocks: int = 1000,
        reorg_depth: int = 128,
        keep_ms: int = 8 * DAY_MS,
        dex: str = "uniswap-v2",
    ) -> None:
        if confirmations < 0 or page_blocks < 1 or reorg_depth < 1:
            raise ValueError("confirmations, page_blocks and reorg_depth must be positive")
        self.url = url
        self.chain = platform_id
        self.from_block = from_block
        self.confirmations = confirmations
        self.page_blocks = page_blocks
        self.reorg_depth = reorg_depth
        self.keep_ms = keep_ms
        self.dex = dex
        self.stats = _Stats()
        self._w3: AsyncWeb3[Any] | None = None
        self._reader: ChainReader | None = None
        # The events not folded yet; offsets into it are absolute: journal[0] is event _base.
        self._journal: list[DexEvent] = []
        self._base = 0
        self._delivered = 0  # absolute
        self._folded = Folded(platform_id)
        self._owed_folded: dict[str, tuple[int, int]] = {}
        self._tip_ts = 0
        self._rewound = False
        self._blocks: list[_Block] = []  # the recent canonical blocks read, oldest first
        self._next = 0  # the next block to read
        self._pools: dict[str, _Pool] = {}
        self._synced: dict[str, _Pool] = {}  # pools with a Sync not yet reconciled
        self._not_pools: set[str] = set()
        self._created: dict[str, tuple[str, str, int, int]] = {}  # V3 pool -> t0, t1, fee, offset
        self._owed: list[_Owed] = []
        # V3 pools touched in this block: what they held (reserves and owed) when first
        # touched, and what the block's transfers moved in (+) and out (-) since.
        self._v3_touched: dict[str, tuple[_Pool, list[int]]] = {}
        self._tokens: dict[str, int] = {}  # listed token -> journal offset of its listing
        self._balances: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._heads = asyncio.Event()
        self._tasks: list[asyncio.Task[Any]] = []
        self._lock = asyncio.Lock()

    @property
    def w3(self) -> AsyncWeb3[Any]:
        if self._w3 is None:
            raise RuntimeError("the source is not started")
        return self._w3

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, back-fill, then follow new heads."""
        provider = WebSocketProvider(self.url, websocket_kwargs={"max_size": _MAX_FRAME})
        self._w3 = await AsyncWeb3(provider)
        self._reader = ChainReader(self._w3)
        head = await self._w3.eth.block_number
        self._next = head + 1 if self.from_block is None else self.from_block
        await self._backfill(head - self.confirmations)
        await self._w3.subscription_manager.subscribe(
            NewHeadsSubscription(handler=self._on_head, label="heads")
        )
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(
                self._w3.subscription_manager.handle_subscriptions(run_forever=True),
                name="evm-subscriptions",
            ),
            loop.create_task(self._follow(), name="evm-follow"),
        ]

    async def aclose(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            # Bounded: a subscription reader stuck in its socket must not hold up a shutdown.
            await asyncio.wait(tasks, timeout=_CLOSE_S)
        w3, self._w3 = self._w3, None
        if w3 is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(w3.provider.disconnect(), _CLOSE_S)

    # -- the Source interface ----------------------------------------------------------------

    def backfill(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[DexEvent]:
        """The back-filled history (read in :meth:`start`)."""
        return self._take()

    def step(self, until_ms: int, prices: Mapping[int, float], /) -> Iterable[DexEvent]:
        """The events of the blocks read since the last call (block time may run ahead)."""
        return self._take()

    def _take(self) -> list[DexEvent]:
        out = self._journal[self._delivered - self._base :]
        self._delivered = self._end
        self._ready.clear()
        self._fold()
        return out

    @property
    def _end(self) -> int:
        """The absolute offset of the next event."""
        return self._base + len(self._journal)

    @property
    def kept(self) -> int:
        """Events kept whole (the rest are folded)."""
        return len(self._journal)

    def _fold(self) -> None:
        """Fold the events handed out that are final and older than ``keep_ms``."""
        if not self._blocks:
            return
        limit = min(self._blocks[0].offset, self._delivered) - self._base
        horizon = self._tip_ts - self.keep_ms
        journal = self._journal
        k = 0
        while k < limit and getattr(journal[k], "ts", 0) < horizon:
            k += 1
        if k == 0:
            return
        self._folded.fold(journal[:k])
        del journal[:k]
        self._base += k
        owed = self._owed_folded
        for entry in self._owed:
            if entry.offset < self._base:
                d0, d1 = owed.get(entry.pool, (0, 0))
                owed[entry.pool] = (d0 + entry.d0, d1 + entry.d1)
        self._owed = [o for o in self._owed if o.offset >= self._base]

    async def wait(self) -> None:
        """Return when events are ready to be taken."""
        await self._ready.wait()

    def take_rewind(self) -> bool:
        """Whether events already handed out were rewound by a reorg since the last call."""
        rewound, self._rewound = self._rewound, False
        return rewound

    def history(self) -> Sequence[DexEvent]:
        """The events handed out so far that are still canonical, oldest first.

        Those folded (final, and older than ``keep_ms``) come restated as the
        state they leave (:mod:`~cmcstream.sources.evm.folded`).
        """
        return self._folded.events() + self._journal[: self._delivered - self._base]

    @property
    def tip(self) -> int:
        """The last block read (``-1`` before any)."""
        return self._next - 1

    # -- following the chain -----------------------------------------------------------------

    async def _on_head(self, ctx: NewHeadsSubscriptionContext) -> None:
        loop = asyncio.get_running_loop()
        self.stats.heads += 1
        number = int(ctx.result["number"])
        self.stats.head_ms.setdefault(number, loop.time() * 1000.0)
        if len(self.stats.head_ms) > 4096:
            self.stats.head_ms.pop(next(iter(self.stats.head_ms)))
        self._heads.set()

    async def _follow(self) -> None:
        while True:
            await self._heads.wait()
            self._heads.clear()
            try:
                await self.catch_up()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("reading new blocks failed; retrying at the next head")

    async def catch_up(self) -> None:
        """Read every block up to ``head - confirmations``, rewinding a reorg first."""
        async with self._lock:
            w3 = self.w3
            head = await w3.eth.block_number
            if self._blocks:
                tip = self._blocks[-1]
                canonical = await w3.eth.get_block(tip.number)
                if bytes(canonical["hash"]) != tip.hash:
                    await self._rewind()
            target = head - self.confirmations
            while self._next <= target:
                block = await w3.eth.get_block(self._next, full_transactions=True)
                if self._blocks and bytes(block["parentHash"]) != self._blocks[-1].hash:
                    await self._rewind()
                    continue
                logs = await w3.eth.get_logs({"blockHash": block["hash"], "topics": [list(TOPICS)]})
                await self._read_block(block, logs)

    async def _rewind(self) -> None:
        """Forget the blocks that are no longer canonical, newest first."""
        w3 = self.w3
        cut: int | None = None
        dropped = 0
        while self._blocks:
            held = self._blocks[-1]
            canonical = await w3.eth.get_block(held.number)
            if bytes(canonical["hash"]) == held.hash:
                break
            cut = held.offset
            self._blocks.pop()
            dropped += 1
        if not self._blocks:
            raise RuntimeError(
                f"a reorg deeper than the {self.reorg_depth} blocks kept; restart the source"
            )
        self._next = self._blocks[-1].number + 1
        if cut is None:
            return
        del self._journal[cut - self._base :]
        if cut < self._delivered:
            self._delivered = cut
            self._rewound = True
            self._ready.set()
        self._pools = {a: p for a, p in self._pools.items() if p.offset < cut}
        self._tokens = {a: o for a, o in self._tokens.items() if o < cut}
        self._created = {a: c for a, c in self._created.items() if c[3] < cut}
        self._owed = [o for o in self._owed if o.offset < cut]
        self._synced.clear()
        self._recount()
        self.stats.reorgs += 1
        self.stats.rewound_blocks += dropped
        logger.warning("reorg: %d blocks rewound, back at block %d", dropped, self._next - 1)

    def _recount(self) -> None:
        """Pool reserves and native balances as the kept events add up."""
        for pool in self._pools.values():
            pool.r0, pool.r1 = self._folded.reserve(pool.address)
            pool.owed0, pool.owed1 = self._owed_folded.get(pool.address, (0, 0))
        for owed in self._owed:
            self._pools[owed.pool].owed0 += owed.d0
            self._pools[owed.pool].owed1 += owed.d1
        self._balances = {w: ev.balance for w, ev in self._folded.natives.items()}
        for ev in self._journal:
            if isinstance(ev, Swap):
                self._move(ev)
            elif isinstance(ev, LiquidityChanged):
                self._liquid(ev)
            elif isinstance(ev, NativeBalanceChanged):
                self._balances[ev.wallet] = ev.balance

    # -- back-fill ---------------------------------------------------------------------------

    async def _backfill(self, target: int) -> None:
        """Read blocks ``[_next, target]``: pairs first, then every log, page by page."""
        w3 = self.w3
        start = self._next
        if target < start:
            return
        # The pools' tokens are listed first, so their transfers before the pool count.
        for lo in range(start, target + 1, self.page_blocks):
            hi = min(lo + self.page_blocks - 1, target)
            for log in await w3.eth.get_logs(
                {"fromBlock": lo, "toBlock": hi, "topics": [list(CREATIONS)]}
            ):
                found = decode(log)
                if found is not None:
                    header = await w3.eth.get_block(found.block)
                    ts = int(header["timestamp"]) * 1000
                    for token in (found.args["token0"], found.args["token1"]):
                        await self._list(token, ts)
        for lo in range(start, target + 1, self.page_blocks):
            hi = min(lo + self.page_blocks - 1, target)
            logs = await w3.eth.get_logs({"fromBlock": lo, "toBlock": hi, "topics": [list(TOPICS)]})
            by_block: dict[int, list[Any]] = {}
            for log in logs:
                by_block.setdefault(int(log["blockNumber"]), []).append(log)
            # Only the last blocks are kept for reorg checks; others need no header.
            keep_from = target - self.reorg_depth + 1
            for number in range(lo, hi + 1):
                block_logs = by_block.get(number)
                if block_logs is None and number < keep_from:
                    continue
                block = await w3.eth.get_block(number, full_transactions=block_logs is not None)
                await self._read_block(block, block_logs or [])
        self._next = target + 1

    # -- one block ---------------------------------------------------------------------------

    async def _read_block(self, block: Any, logs: Sequence[Any]) -> None:
        number = int(block["number"])
        ts = int(block["timestamp"]) * 1000
        start = self._end
        senders: dict[str, str] = {}
        if logs:
            for tx in block["transactions"]:
                if not isinstance(tx, bytes):
                    senders["0x" + bytes(tx["hash"]).hex()] = str(tx["from"]).lower()
        touched: dict[str, None] = {}
        self.stats.logs += len(logs)
        for log in sorted(logs, key=lambda lg: int(lg["logIndex"])):
            found = decode(log)
            if found is not None:
                await self._apply(found, ts, senders, touched)
        for pool in list(self._synced.values()):
            self._settle(pool, number, ts, "")
        await self._reconcile_v3(number, ts)
        await self._read_balances(touched, number, ts)
        self._blocks.append(_Block(number, bytes(block["hash"]), start))
        if len(self._blocks) > self.reorg_depth:
            del self._blocks[0]
        self._next = number + 1
        self.stats.blocks += 1
        self.stats.events += self._end - start
        self._tip_ts = ts
        if self._end > self._delivered:
            self._ready.set()

    async def _apply(
        self, d: Decoded, ts: int, senders: Mapping[str, str], touched: dict[str, None]
    ) -> None:
        chain, a = self.chain, d.args
        if d.name == "PairCreated":
            await self._add_pool(d.args["pair"], a["token0"], a["token1"], d.block, ts, d.tx)
            return
        if d.name == "PoolCreated":
            if await self._list(a["token0"], ts) and await self._list(a["token1"], ts):
                self._created[a["pool"]] = (a["token0"], a["token1"], a["fee"], self._end)
            return
        if d.name.startswith("V3"):
            await self._apply_v3(d, ts, senders, touched)
            return
        if d.name in ("Transfer", "Deposit", "Withdrawal"):
            if d.address not in self._tokens:
                return
            if d.name == "Transfer":
                sender, receiver, amount = a["from"], a["to"], a["value"]
            elif d.name == "Deposit":
                sender, receiver, amount = _ZERO, a["dst"], a["wad"]
            else:
                sender, receiver, amount = a["src"], _ZERO, a["wad"]
            self._journal.append(
                Transfer(
                    chain,
                    d.block,
                    ts,
                    d.tx,
                    d.address,
                    None if sender == _ZERO else sender,
                    None if receiver == _ZERO else receiver,
                    amount,
                    log_index=d.log_index,
                )
            )
            for end, sign in ((sender, -1), (receiver, 1)):
                moved = self._pools.get(end)
                if moved is not None and moved.v3:
                    flow = self._touch(moved)
                    if d.address == moved.token0:
                        flow[2] += sign * amount
                    elif d.address == moved.token1:
                        flow[3] += sign * amount
            return
        pool = self._pools.get(d.address)
        if pool is None:
            pool = await self._adopt(d.address, d.block, ts, d.tx)
            if pool is None:
                return
        if d.name == "Sync":
            pool.sync = (a["reserve0"], a["reserve1"])
            self._synced[d.address] = pool
            return
        origin = senders.get(d.tx, _ZERO)
        touched[origin] = None
        if d.name == "Swap":
            net0 = a["amount0In"] - a["amount0Out"]
            swap = self._swap(pool, d, ts, origin, net0, a["amount1In"] - a["amount1Out"])
            self._move(swap)
            ev: DexEvent = swap
        else:
            change = LiquidityChanged(
                chain,
                d.block,
                ts,
                d.tx,
                d.address,
                "add" if d.name == "Mint" else "remove",
                origin,
                origin,
                a["amount0"],
                a["amount1"],
                log_index=d.log_index,
            )
            self._liquid(change)
            ev = change
        self._journal.append(ev)
        self._settle(pool, d.block, ts, d.tx)

    async def _apply_v3(
        self, d: Decoded, ts: int, senders: Mapping[str, str], touched: dict[str, None]
    ) -> None:
        chain, a = self.chain, d.args
        pool = self._pools.get(d.address)
        if d.name == "V3Initialize":
            if pool is None:
                await self._add_v3(d.address, d.block, ts, d.tx, a["sqrtPriceX96"])
            return
        if pool is None:
            pool = await self._adopt_v3(d.address, d.block, ts, d.tx)
            if pool is None:
                return
        origin = senders.get(d.tx, _ZERO)
        self._touch(pool)
        ev: DexEvent
        if d.name == "V3Swap":
            # Signed: what the pool received of each token.
            ev = self._swap(pool, d, ts, origin, a["amount0"], a["amount1"], a["sqrtPriceX96"])
            self._move(ev)
        elif d.name in ("V3Mint", "V3Burn"):
            a0, a1 = a["amount0"], a["amount1"]
            if a0 == 0 and a1 == 0:
                return  # a zero burn only updates a position's fees ("poke")
            action = "add" if d.name == "V3Mint" else "remove"
            ev = LiquidityChanged(
                chain, d.block, ts, d.tx, d.address, action, origin, origin, a0, a1,
                log_index=d.log_index,
            )  # fmt: skip
            self._liquid(ev)
            if action == "remove":
                self._owe(pool, a0, a1)
        elif d.name in ("V3Collect", "V3CollectProtocol"):
            # What was owed leaves a pool already counted out; the rest is fees.
            paid0, paid1 = min(a["amount0"], pool.owed0), min(a["amount1"], pool.owed1)
            self._owe(pool, -paid0, -paid1)
            fees0, fees1 = a["amount0"] - paid0, a["amount1"] - paid1
            if fees0 == 0 and fees1 == 0:
                return
            ev = LiquidityChanged(
                chain, d.block, ts, d.tx, d.address, "remove", origin, origin, fees0, fees1,
                log_index=d.log_index,
            )  # fmt: skip
            self._liquid(ev)
        else:
            return
        touched[origin] = None
        self._journal.append(ev)

    def _owe(self, pool: _Pool, d0: int, d1: int) -> None:
        if d0 or d1:
            pool.owed0 += d0
            pool.owed1 += d1
            self._owed.append(_Owed(self._end, pool.address, d0, d1))

    async def _add_v3(
        self, address: str, block: int, ts: int, tx: str, sqrt_price: int
    ) -> _Pool | None:
        created = self._created.pop(address, None)
        if created is not None:
            token0, token1, fee, _ = created
        else:  # created before the source started
            if address in self._not_pools or self._reader is None:
                return None
            found = await self._reader.v3_pool(address)
            if found is None:
                self._not_pools.add(address)
                return None
            token0, token1, fee = found
        for token in (token0, token1):
            if not await self._list(token, ts):
                self._not_pools.add(address)
                return None
        pool = _Pool(address, token0, token1, offset=self._end, v3=True)
        self._pools[address] = pool
        self._journal.append(
            PoolCreated(
                self.chain, block, ts, tx, address, _V3_DEX, token0, token1,
                fee_bps=fee // 100, sqrt_price_x96=sqrt_price,
            )
        )  # fmt: skip
        return pool

    async def _adopt_v3(self, address: str, block: int, ts: int, tx: str) -> _Pool | None:
        """A pool initialized before the source started: its price and balances the block before."""
        reader = self._reader
        if address in self._not_pools or reader is None:
            return None
        if await reader.v3_pool(address) is None:
            self._not_pools.add(address)
            return None
        sqrt_price = await reader.sqrt_price(address, block - 1)
        if sqrt_price == 0:
            self._not_pools.add(address)
            return None
        pool = await self._add_v3(address, block, ts, tx, sqrt_price)
        if pool is None:
            return None
        # What burned positions were owed then is not known: it counts in.
        r0 = await reader.balance_of(pool.token0, address, block - 1)
        r1 = await reader.balance_of(pool.token1, address, block - 1)
        if r0 or r1:
            ev = LiquidityChanged(self.chain, block, ts, tx, address, "add", _ZERO, _ZERO, r0, r1)
            self._liquid(ev)
            self._journal.append(ev)
        return pool

    def _swap(
        self,
        pool: _Pool,
        d: Decoded,
        ts: int,
        origin: str,
        net0: int,
        net1: int,
        sqrt_price_x96: int | None = None,
    ) -> Swap:
        """A swap from what the pool received of each token (what it paid out is negative)."""
        if net0 > 0 or (net0 == 0 and net1 < 0):
            t_in, t_out, amount_in, amount_out = pool.token0, pool.token1, net0, -net1
        else:
            t_in, t_out, amount_in, amount_out = pool.token1, pool.token0, net1, -net0
        return Swap(
            self.chain,
            d.block,
            ts,
            d.tx,
            d.address,
            origin,
            origin,
            t_in,
            t_out,
            amount_in,
            amount_out,
            log_index=d.log_index,
            sqrt_price_x96=sqrt_price_x96,
        )

    def _move(self, ev: Swap) -> None:
        pool = self._pools.get(ev.pool)
        if pool is None:
            return
        if ev.token_in == pool.token0:
            pool.r0 += ev.amount_in
            pool.r1 -= ev.amount_out
        else:
            pool.r1 += ev.amount_in
            pool.r0 -= ev.amount_out

    def _liquid(self, ev: LiquidityChanged) -> None:
        pool = self._pools.get(ev.pool)
        if pool is None:
            return
        sign = -1 if ev.action == "remove" else 1
        pool.r0 += sign * ev.amount0
        pool.r1 += sign * ev.amount1

    def _settle(self, pool: _Pool, block: int, ts: int, tx: str) -> None:
        """Reconcile the pool's reserves with its last ``Sync``."""
        if pool.sync is None:
            return
        (s0, s1), pool.sync = pool.sync, None
        self._synced.pop(pool.address, None)
        self._restate(pool, s0 - pool.r0, s1 - pool.r1, block, ts, tx)

    def _touch(self, pool: _Pool) -> list[int]:
        """The pool's ``[held0, held1, in0, in1]`` in this block, from its first touch."""
        found = self._v3_touched.get(pool.address)
        if found is None:
            held = [pool.r0 + pool.owed0, pool.r1 + pool.owed1, 0, 0]
            found = self._v3_touched[pool.address] = (pool, held)
        return found[1]

    async def _reconcile_v3(self, block: int, ts: int) -> None:
        """Reconcile the V3 pools whose tokens moved with what they hold after the block.

        V3 has no ``Sync``: tokens sent to a pool outside its events (a
        donation, a flash loan's fee) show only in its balances. When the
        block's transfers to and from a pool add up to what its events moved,
        nothing is asked; otherwise its ``balanceOf`` is.
        """
        touched, self._v3_touched = self._v3_touched, {}
        if self._reader is None:
            return
        for pool, (held0, held1, in0, in1) in touched.values():
            if (held0 + in0, held1 + in1) == (pool.r0 + pool.owed0, pool.r1 + pool.owed1):
                continue
            b0 = await self._reader.balance_of(pool.token0, pool.address, block)
            b1 = await self._reader.balance_of(pool.token1, pool.address, block)
            self._restate(pool, b0 - pool.owed0 - pool.r0, b1 - pool.owed1 - pool.r1, block, ts, "")

    def _restate(self, pool: _Pool, d0: int, d1: int, block: int, ts: int, tx: str) -> None:
        """Liquidity changes that move the pool's reserves by ``(d0, d1)``."""
        if d0 == 0 and d1 == 0:
            return
        # One liquidity change per direction: the engine's amounts are positive.
        adds = (max(d0, 0), max(d1, 0))
        removes = (max(-d0, 0), max(-d1, 0))
        for action, (a0, a1) in (("add", adds), ("remove", removes)):
            if a0 or a1:
                ev = LiquidityChanged(
                    self.chain, block, ts, tx, pool.address, action, _ZERO, _ZERO, a0, a1
                )
                self._liquid(ev)
                self._journal.append(ev)

    async def _add_pool(
        self, address: str, token0: str, token1: str, block: int, ts: int, tx: str
    ) -> _Pool | None:
        if address in self._pools:
            return self._pools[address]
        for token in (token0, token1):
            if not await self._list(token, ts):
                self._not_pools.add(address)
                return None
        pool = _Pool(address, token0, token1, offset=self._end)
        self._pools[address] = pool
        self._journal.append(
            PoolCreated(self.chain, block, ts, tx, address, self.dex, token0, token1, 30)
        )
        return pool

    async def _adopt(self, address: str, block: int, ts: int, tx: str) -> _Pool | None:
        """A pair created before the source started, with its reserves as of the block before."""
        if address in self._not_pools or self._reader is None:
            return None
        tokens = await self._reader.pair_tokens(address)
        if tokens is None:
            self._not_pools.add(address)
            return None
        pool = await self._add_pool(address, *tokens, block, ts, tx)
        if pool is None:
            return None
        r0, r1 = await self._reader.reserves(address, block - 1)
        if r0 or r1:
            ev = LiquidityChanged(self.chain, block, ts, tx, address, "add", _ZERO, _ZERO, r0, r1)
            self._liquid(ev)
            self._journal.append(ev)
        return pool

    async def _list(self, token: str, ts: int) -> bool:
        if token in self._tokens:
            return True
        assert self._reader is not None
        info = await self._reader.token(token)
        if info is None:
            return False
        self._tokens[token] = self._end
        self._journal.append(
            TokenListed(
                self.chain,
                token,
                info.symbol,
                info.name,
                info.decimals,
                info.total_supply,
                creator=info.creator,
                ts=ts,
            )
        )
        return True

    async def _read_balances(self, wallets: Mapping[str, None], block: int, ts: int) -> None:
        if self._reader is None:
            return
        for wallet in wallets:
            if wallet == _ZERO:
                continue
            balance = await self._reader.native_balance(wallet, block)
            if self._balances.get(wallet) != balance:
                self._balances[wallet] = balance
                self._journal.append(NativeBalanceChanged(self.chain, block, ts, wallet, balance))
