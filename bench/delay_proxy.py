"""A TCP proxy that holds every chunk the client sends for DELAY seconds before forwarding it,
so that a service behind it answers DELAY seconds late (a slow customer service).

Connections are accepted and opened at once; only the data waits, each chunk from its own
arrival (a keep-alive connection's next request is not delayed twice). Answers pass through
untouched. The delay switches at run time: SIGUSR1 sets it to --slow, SIGUSR2 back to 0.

    python bench/delay_proxy.py --listen 18001 --upstream 8001 --slow 5 [--start-slow]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

HOST = "127.0.0.1"


class DelayProxy:
    def __init__(self, upstream_port: int, slow_s: float, delay_s: float = 0.0) -> None:
        self.upstream_port, self.slow_s, self.delay_s = upstream_port, slow_s, delay_s

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            upstream_r, upstream_w = await asyncio.open_connection(HOST, self.upstream_port)
        except OSError:
            client_w.close()
            return
        tasks = [asyncio.create_task(self.delayed(client_r, upstream_w)),
                 asyncio.create_task(self.pipe(upstream_r, client_w))]
        # Cancelled at shutdown: a connection handler is the top, nobody awaits it.
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for writer in (client_w, upstream_w):
            writer.close()

    async def delayed(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Client to upstream: each chunk waits the delay in force when it arrived, in order."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            while True:
                due, chunk = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not chunk:
                    return
                writer.write(chunk)
                await writer.drain()

        forwarder = asyncio.create_task(forward())
        try:
            with contextlib.suppress(ConnectionError):
                while chunk := await reader.read(65536):
                    queue.put_nowait((loop.time() + self.delay_s, chunk))
            queue.put_nowait((loop.time() + self.delay_s, b""))
            await forwarder
        finally:
            forwarder.cancel()

    async def pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()

    def slow_down(self) -> None:
        self.delay_s = self.slow_s
        print(f"delay now {self.delay_s} s", flush=True)

    def speed_up(self) -> None:
        self.delay_s = 0.0
        print("delay now 0 s", flush=True)


async def serve(listen_port: int, proxy: DelayProxy) -> None:
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.slow_down)
    loop.add_signal_handler(signal.SIGUSR2, proxy.speed_up)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(proxy.handle, HOST, listen_port)
    print(f"proxy 127.0.0.1:{listen_port} -> 127.0.0.1:{proxy.upstream_port}, "
          f"delay {proxy.delay_s} s", flush=True)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument("--slow", type=float, default=5.0, help="delay after SIGUSR1 (s)")
    parser.add_argument("--start-slow", action="store_true", help="start with the delay on")
    args = parser.parse_args(argv)
    proxy = DelayProxy(args.upstream, args.slow, args.slow if args.start_slow else 0.0)
    asyncio.run(serve(args.listen, proxy))
    return 0


if __name__ == "__main__":
    sys.exit(main())
