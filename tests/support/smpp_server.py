"""An SMSC for tests: smpp34's server on 127.0.0.1 behind a small fault-injecting TCP proxy.

smpp34 (an SMPP 3.4 implementation that is not ours) runs on an asyncio loop in a background
thread. Tests script its replies per destination (throttle a few times, refuse for good, hold
replies), send delivery receipts, and read back what it received, with long texts reassembled
from their UDH parts. The proxy in front can cut every client connection, or cut one right after
it forwarded a given submit (so the SMSC has the submit and the client never sees its reply).

As a pytest fixture, one fresh SMSC per test (or ``pytest_plugins = ["tests.support.smpp_server"]``
in a conftest for the ``smpp_server`` fixture)::

    smsc = pytest.fixture(serve_smsc, name="smsc")

and from benchmarks and scripts::

    with SmppTestServer() as smsc:
        gateway = SmppGateway("smpp", HOST=smsc.host, PORT=smsc.port, ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import struct
import sys
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import smpp34

SUBMIT_SM = 0x00000004
BIND_TRANSCEIVER = 0x00000009
ENQUIRE_LINK = 0x00000015


@dataclass(frozen=True)
class Submitted:
    """One submit_sm the SMSC received and what it answered."""

    session_id: str
    source_addr: str
    destination_addr: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    short_message: bytes
    status: int
    message_id: str | None
    at: float


class SmppTestServer:
    """smpp34 server + proxy. ``host``/``port`` are the proxy's (what clients use)."""

    def __init__(
        self,
        *,
        auto_receipt: str | None = None,
        receipt_delay: float = 0.0,
        accept_delay: float = 0.0,
        receipt_tlv: bool = True,
    ):
        self.host = "127.0.0.1"
        self.port = 0
        self.server_port = 0
        self.auto_receipt = auto_receipt
        #: Receipt status word per destination, over ``auto_receipt``.
        self.receipt_words: dict[str, str] = {}
        self.receipt_delay = receipt_delay
        self.accept_delay = accept_delay
        self.receipt_tlv = receipt_tlv
        self.submits: list[Submitted] = []
        self.receipts_sent: list[tuple[str, str, int]] = []
        self.sessions_bound = 0
        #: command_id -> how many PDUs of it clients sent (counted by the proxy).
        self.commands: Counter[int] = Counter()
        #: When set, the proxy answers every bind with this status instead of forwarding it.
        self.bind_status: int | None = None
        self._scripts: dict[str, deque[int]] = defaultdict(deque)
        self._refusals: dict[str, int] = {}
        self._cut_after: set[str] = set()
        self._silenced: set[str] = set()
        self._swallow: set[int] = set()
        self._esmes: dict[str, Any] = {}
        self._session_of: dict[str, str] = {}
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # wait_for predicates read under it
        self._changed = threading.Condition(self._lock)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="smpp34", daemon=True)
        self._server: Any = None
        self._proxy: asyncio.Server | None = None
        self._links: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._link_tasks: set[asyncio.Task[Any]] = set()
        self._submit_queue: asyncio.Queue[Any] | None = None

    def __enter__(self) -> SmppTestServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()
        self.call(self._start(), timeout=10)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        with contextlib.suppress(Exception):
            self.call(self._stop(), timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 10) -> Any:
        """Run ``coroutine`` on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def script(self, destination: str, statuses: list[int]) -> None:
        """Answer the next submits to ``destination`` with these statuses, then accept."""
        with self._lock:
            self._scripts[destination].extend(statuses)

    def refuse(self, destination: str, status: int) -> None:
        """Answer every submit to ``destination`` with ``status``."""
        with self._lock:
            self._refusals[destination] = status

    def cut_after_submit(self, destination: str) -> None:
        """The next submit to ``destination`` reaches the SMSC; its connection is then cut
        before any reply goes back."""
        with self._lock:
            self._cut_after.add(destination)

    def withhold_reply(self, destination: str) -> None:
        """The SMSC gets the next submit to ``destination``, but its reply never reaches the
        client (the session stays up)."""
        with self._lock:
            self._silenced.add(destination)

    def drop_connections(self) -> None:
        """Cut every client connection now, as a network failure would."""
        self.call(self._drop_all())

    def unbind_sessions(self) -> None:
        """The SMSC sends unbind to every bound session."""
        self.call(self._unbind_all())

    def send_receipt(self, message_id: str, stat: str, *, destination: str = "") -> int:
        """Send a delivery receipt for ``message_id``; the client's deliver_sm_resp status."""
        return self.call(self._receipt(message_id, stat, destination), timeout=10)

    def accepted(self, destination: str | None = None) -> list[Submitted]:
        with self._lock:
            return [
                s
                for s in self.submits
                if s.status == 0 and destination in (None, s.destination_addr)
            ]

    def texts(self, destination: str) -> list[str]:
        """The texts accepted for ``destination``, long ones joined from their UDH parts."""
        texts: list[str] = []
        groups: dict[tuple[int, int], dict[int, Submitted]] = {}
        for submit in self.accepted(destination):
            if submit.esm_class & 0x40:
                udhl = submit.short_message[0]
                header = submit.short_message[1 : 1 + udhl]
                if header[0] == 0x00:
                    reference, total, number = header[2], header[3], header[4]
                    group = groups.setdefault((reference, total), {})
                    group[number] = submit
                    if len(group) == total:
                        body = b"".join(
                            group[n].short_message[1 + udhl :] for n in range(1, total + 1)
                        )
                        texts.append(_decode(body, submit.data_coding))
                        del groups[(reference, total)]
                    continue
            texts.append(_decode(submit.short_message, submit.data_coding))
        return texts

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate()`` holds (checked whenever the SMSC receives something)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(min(remaining, 0.05))
        return True

    async def _start(self) -> None:
        self.server_port = _free_port()
        self._server = smpp34.Server(host=self.host, port=self.server_port, system_id="SMSClub")
        await self._server.start()
        self._submit_queue = asyncio.Queue()
        self._spawn(self._events())
        self._spawn(self._answer_submits())
        self._proxy = await asyncio.start_server(self._link, self.host, 0)
        self.port = self._proxy.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._proxy is not None:
            self._proxy.close()
        await self._drop_all()
        # Connections end by themselves once cut (cancelling them makes asyncio log errors);
        # the SMSC's own loops are cancelled.
        if self._link_tasks:
            await asyncio.wait(list(self._link_tasks), timeout=2)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.stop(), 5)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _events(self) -> None:
        assert self._submit_queue is not None
        while True:
            event = await self._server.next()
            if isinstance(event, smpp34.Esme):
                with self._changed:
                    self._esmes[event.session_id] = event
                    self.sessions_bound += 1
                    self._changed.notify_all()
            elif isinstance(event, smpp34.Unbound):
                with self._changed:
                    self._esmes.pop(event.session_id, None)
                    self._changed.notify_all()
            elif isinstance(event, smpp34.SubmitSmEvent):
                # Answered in order by one task, so accept_delay slows the SMSC down as a
                # whole rather than per submit.
                self._submit_queue.put_nowait(event)

    async def _answer_submits(self) -> None:
        assert self._submit_queue is not None
        while True:
            event = await self._submit_queue.get()
            if self.accept_delay:
                await asyncio.sleep(self.accept_delay)
            destination = event.destination_addr
            with self._lock:
                script = self._scripts.get(destination)
                status = script.popleft() if script else self._refusals.get(destination, 0)
            message_id = f"{next(self._ids):010d}" if status == 0 else None
            with contextlib.suppress(Exception):  # the session may be gone already
                if status == 0:
                    event.accept(message_id)
                else:
                    event.reject(status)
            submit = Submitted(
                event.session_id,
                event.source_addr,
                destination,
                event.data_coding,
                event.esm_class,
                event.registered_delivery,
                bytes(event.short_message),
                status,
                message_id,
                time.monotonic(),
            )
            with self._changed:
                self.submits.append(submit)
                self._session_of[message_id or ""] = event.session_id
                self._changed.notify_all()
            word = self.receipt_words.get(destination, self.auto_receipt)
            if status == 0 and word and event.registered_delivery:
                self._spawn(self._later_receipt(message_id, word, destination))

    async def _later_receipt(self, message_id: str, word: str, destination: str) -> None:
        if self.receipt_delay:
            await asyncio.sleep(self.receipt_delay)
        with contextlib.suppress(Exception):
            await self._receipt(message_id, word, destination)

    async def _receipt(self, message_id: str, stat: str, destination: str) -> int:
        with self._lock:
            esme = self._esmes.get(self._session_of.get(message_id, "")) or next(
                iter(self._esmes.values()), None
            )
        if esme is None:
            raise RuntimeError("no bound session to send a receipt to")
        stamp = time.strftime("%y%m%d%H%M")
        body = (
            f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{stamp} done date:{stamp} stat:{stat} err:000 text:"
        ).encode()
        tlvs = []
        if self.receipt_tlv:
            tlvs.append(smpp34.Tlv(smpp34.TLV_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\0"))
        response = await asyncio.wait_for(
            esme.deliver_sm(
                "Shop",
                body,
                source_addr=destination or "380000000000",
                esm_class=0x04,
                tlvs=tlvs,
            ),
            5,
        )
        with self._changed:
            self.receipts_sent.append((message_id, stat, response.command_status))
            self._changed.notify_all()
        return response.command_status

    async def _unbind_all(self) -> None:
        with self._lock:
            esmes = list(self._esmes.values())
        for esme in esmes:
            # smpp34 never completes this future (it nacks the unbind_resp): fire and forget.
            self._spawn(_quietly(asyncio.wait_for(esme.unbind(), 5)))

    async def _drop_all(self) -> None:
        for client, upstream in list(self._links):
            for writer in (client, upstream):
                _abort(writer)
        self._links.clear()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._link_tasks.add(task)
            task.add_done_callback(self._link_tasks.discard)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.server_port)
        except OSError:
            _abort(writer)
            return
        link = (writer, up_writer)
        self._links.add(link)
        cut = asyncio.Event()
        self._spawn(self._pipe(up_reader, writer, cut, link, inspect=False))
        await self._pipe(reader, up_writer, cut, link, inspect=True)

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cut: asyncio.Event,
        link: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        *,
        inspect: bool,
    ) -> None:
        client, upstream = link
        try:
            while not cut.is_set():
                header = await reader.readexactly(4)
                (length,) = struct.unpack(">L", header)
                frame = header + await reader.readexactly(length - 4)
                if cut.is_set():
                    break
                (command_id, sequence) = struct.unpack(">L4xL", frame[4:16])
                if not inspect:
                    with self._lock:
                        if command_id == 0x80000004 and sequence in self._swallow:
                            self._swallow.discard(sequence)
                            continue
                if inspect:
                    with self._lock:
                        self.commands[command_id] += 1
                        if command_id == SUBMIT_SM:
                            destination = _submit_destination(frame)
                            if destination in self._silenced:
                                self._silenced.discard(destination)
                                self._swallow.add(sequence)
                    if command_id == BIND_TRANSCEIVER and self.bind_status is not None:
                        reply = struct.pack(
                            ">LLLL", 17, 0x80000000 | command_id, self.bind_status, sequence
                        )
                        client.write(reply + b"\0")
                        continue
                writer.write(frame)
                if inspect and self._cut_here(frame):
                    # The SMSC gets the submit; the client loses the connection before any
                    # reply, and the upstream side closes a moment later.
                    await writer.drain()
                    cut.set()
                    _abort(client)
                    await asyncio.sleep(0.5)
                    _abort(upstream)
                    break
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            cut.set()
            self._links.discard(link)
            _abort(writer)

    def _cut_here(self, frame: bytes) -> bool:
        (command_id,) = struct.unpack(">L", frame[4:8])
        if command_id != SUBMIT_SM:
            return False
        destination = _submit_destination(frame)
        with self._lock:
            if destination in self._cut_after:
                self._cut_after.discard(destination)
                return True
        return False


def serve_smsc() -> Iterator[SmppTestServer]:
    """A running SMSC for one test, stopped afterwards (wrap it with ``pytest.fixture``)."""
    with SmppTestServer() as server:
        yield server


smpp_server = pytest.fixture(serve_smsc, name="smpp_server")


def _submit_destination(frame: bytes) -> str:
    body = frame[16:]
    position = body.index(b"\0") + 1  # service_type
    position += 2  # source TON, NPI
    position = body.index(b"\0", position) + 1  # source_addr
    position += 2  # destination TON, NPI
    end = body.index(b"\0", position)
    return body[position:end].decode("ascii", "replace")


def _decode(body: bytes, data_coding: int) -> str:
    if data_coding == 8:
        return body.decode("utf-16-be")
    return body.decode("latin-1")


def _abort(writer: asyncio.StreamWriter) -> None:
    transport = writer.transport
    if not transport.is_closing():
        transport.abort()


async def _quietly(awaitable: Any) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await awaitable


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    """Run the SMSC alone (for benchmarks: a separate process keeps its work off the GIL of
    the client being measured). Prints ``port N`` (smpp34's own port), serves until stdin
    closes."""
    import argparse

    parser = argparse.ArgumentParser(description="smpp34 test SMSC on 127.0.0.1")
    parser.add_argument("--auto-receipt", help="answer every accepted submit with this word")
    parser.add_argument("--receipt-delay", type=float, default=0.0, help="seconds")
    args = parser.parse_args()
    with SmppTestServer(auto_receipt=args.auto_receipt, receipt_delay=args.receipt_delay) as server:
        print(f"port {server.server_port}", flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
