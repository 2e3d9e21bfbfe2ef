"""Pure, synchronous building blocks: no I/O, no asyncio. Everything here is safe to call from worker
threads; the C libraries used (blake3, zstd, AES-GCM, FastCDC) release the GIL."""
