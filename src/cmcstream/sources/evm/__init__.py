"""An EVM chain as an on-chain source: JSON-RPC ingest, Uniswap and ERC-20 decoding, reorgs."""
