"""The CoinMarketCap WebSocket protocol, with no I/O: messages, codes, channels, sessions."""
