"""httpcore network backend whose reads carry the time the bytes reached this host.

A monitor must not report its own load as the provider's latency. Userland can only see
when the event loop got round to a socket, which under hundreds of concurrent streams
(or a busy daemon) is milliseconds after the bytes arrived. Linux stamps every received
TCP segment in the kernel; with SO_TIMESTAMPNS, `recvmsg` hands that stamp over with the
data. asyncio's transports read with `recv`, which drops it, so this module has a small
socket transport of its own that reads with `recvmsg` (TLS still runs on asyncio's
SSLProtocol over it, via `loop.start_tls`).

Every read is stamped on the perf_counter clock: kernel arrival where the platform gives
it (the wall-clock wait since the kernel stamp is taken off `perf_counter_ns()`, so clock
steps never leak in), else the moment the loop read the socket, before h11, httpcore and
httpx parse anything. `StampedStream.read` returns the bytes of one socket read at a time
so `last_read_ns` is exactly theirs; `run_probe` reads it via the `network_stream`
extension.

A kernel stamp is only as good as the segment it sits on: when a socket is not read
before its next segment arrives, the kernel merges the two (tcp_try_coalesce) and keeps
the later stamp. A loop busy for longer than one inter-token gap (hundreds of streams,
a long callback) would blur token times that way. So the probes' own hot path polls the
probe sockets between its steps (`_ReadAhead`): any socket with bytes waiting is read
and stamped within about a millisecond, however long the loop's current iteration runs,
and the bytes wait in userland (already stamped) until their task gets the CPU.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import ipaddress
import select
import socket
import ssl
import struct
import sys
import time
import typing
import weakref

import httpcore
import httpx

# Linux: SO_TIMESTAMPNS == SCM_TIMESTAMPNS == 35 (Python's socket module lacks the name).
_SO_TIMESTAMPNS: int | None = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform == "linux" else None)
_TIMESPEC = struct.Struct("@ll")
_ANCBUF = socket.CMSG_SPACE(_TIMESPEC.size) if hasattr(socket, "CMSG_SPACE") else 0
# A kernel stamp further back than this is not believed (the wall clock stepped).
_MAX_WAIT_NS = 60 * 1_000_000_000
_READ_SIZE = 64 * 1024  # below malloc's mmap threshold: a 256 KiB read buffer costs an mmap per read
_INBOX_HIGH = 1 << 20  # bytes buffered before the socket stops being read
_WRITE_HIGH, _WRITE_LOW = 64 * 1024, 16 * 1024
_CLOSE_WAIT = 2.0

_READ_ERRORS = (OSError, ConnectionError)
# How stale the read-ahead poll may get: well under any inter-token gap worth timing.
_READ_AHEAD_NS = 1_000_000
# A stream whose bytes are always there already never has to wait, so its reader would
# never hand the loop back: its own deadline, /healthz and every other probe would starve.
# A read hands the loop back once this long has passed since the last time it waited.
_YIELD_NS = 1_000_000
# Bytes handed up per read: the caller parses what one read returns before it reads
# again, so this bounds the loop time one read can cost (a 64 KiB read of tiny events
# is ~8 ms of parsing, 8 KiB ~1 ms). A segment split in two keeps its stamp on both halves.
_MAX_READ = 8 * 1024


class _ReadAhead:
    """An epoll set of one loop's reading probe sockets, polled from the probes' own steps.

    The loop polls its selector once per iteration; an iteration that runs for tens of
    milliseconds leaves segments unread long enough to be merged. `tick` (called on every
    body read, between the probes' own steps) polls without blocking when the last poll is
    over `_READ_AHEAD_NS` old, and reads every ready socket there and then. The loop's own
    callback for such a socket later finds it drained and returns.

    The loop's reader callbacks do not tick: they run back to back right after the loop's
    poll, for the sockets that poll found ready, so a tick there read the next sockets of
    the same batch a few microseconds early, and each of their callbacks then paid a failed
    `recvmsg` (a syscall and a BlockingIOError): ~33 a 64-token probe at 20 concurrent
    streams, half its socket reads (counted with cProfile, bench/probe_cpu.py). The ticks
    of the body reads alone cover the long iterations (the probes' steps are what runs
    between them) and poll as often (bench/timing_accuracy.py: the same error).
    """

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._by_fd: dict[int, RxTransport] = {}
        self.last_ns = 0

    def add(self, rx: RxTransport) -> None:
        try:
            self._ep.register(rx._fd, select.EPOLLIN)
        except OSError:  # already registered (fd reuse after an unobserved close)
            self._ep.modify(rx._fd, select.EPOLLIN)
        self._by_fd[rx._fd] = rx

    def remove(self, rx: RxTransport) -> None:
        if self._by_fd.get(rx._fd) is rx:
            del self._by_fd[rx._fd]
            try:
                self._ep.unregister(rx._fd)
            except (OSError, ValueError):
                pass

    def tick(self, now: int) -> None:
        if now - self.last_ns < _READ_AHEAD_NS or not self._by_fd:
            return
        self.last_ns = now
        try:
            ready = self._ep.poll(0)
        except OSError:
            return
        for fd, _ in ready:
            rx = self._by_fd.get(fd)
            if rx is not None and rx._reading:
                rx._read_ready()


_READ_AHEADS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _ReadAhead] = weakref.WeakKeyDictionary()


def _read_ahead_for(loop: asyncio.AbstractEventLoop) -> _ReadAhead | None:
    if not hasattr(select, "epoll"):
        return None  # the loop's own polling only (macOS, BSD)
    ra = _READ_AHEADS.get(loop)
    if ra is None:
        ra = _READ_AHEADS[loop] = _ReadAhead()
    return ra


def _enable_kernel_stamps(sock: socket.socket) -> bool:
    if _SO_TIMESTAMPNS is None or not _ANCBUF:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


class RxTransport(asyncio.Transport):
    """A non-blocking TCP/Unix socket transport that stamps every read (`last_rx_ns`)."""

    _start_tls_compatible = True  # loop.start_tls accepts it

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket,
                 protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)  # SSLProtocol is
        self._kernel = _enable_kernel_stamps(sock)
        self._wbuf = bytearray()
        self._flush_pending = False
        self._writer_added = False
        self._reading = False
        self._closing = False
        self._lost = False
        self._eof_pending = False
        self._write_paused = False
        self._high, self._low = _WRITE_HIGH, _WRITE_LOW
        self.last_rx_ns = 0
        self.kernel_stamps = 0  # reads stamped by the kernel (the rest: by the loop)
        self._ahead = _read_ahead_for(loop)
        try:
            peer = sock.getpeername()
        except OSError:
            peer = None
        self._extra: dict[str, typing.Any] = {"socket": sock, "sockname": sock.getsockname(), "peername": peer}

    def start(self) -> None:
        self._protocol.connection_made(self)
        self.resume_reading()

    # reading
    def _read_ready(self) -> None:
        proto = self._protocol
        buffered = self._buffered
        try:
            if buffered:
                buf = typing.cast(asyncio.BufferedProtocol, proto).get_buffer(-1)
                if self._kernel:
                    n, anc, _, _ = self._sock.recvmsg_into([buf], _ANCBUF)
                else:
                    n, anc = self._sock.recv_into(buf), []
                data = b""
            else:
                if self._kernel:
                    data, anc, _, _ = self._sock.recvmsg(_READ_SIZE, _ANCBUF)
                else:
                    data, anc = self._sock.recv(_READ_SIZE), []
                n = len(data)
        except (BlockingIOError, InterruptedError):
            return  # drained by the read-ahead already
        except Exception as exc:
            self._force_close(exc)
            return
        now = time.perf_counter_ns()
        stamp = now
        for level, kind, raw in anc:
            if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(raw) >= _TIMESPEC.size:
                sec, nsec = _TIMESPEC.unpack_from(raw)
                waited = time.time_ns() - (sec * 1_000_000_000 + nsec)
                if 0 <= waited < _MAX_WAIT_NS:
                    stamp = now - waited
                    self.kernel_stamps += 1
        self.last_rx_ns = stamp
        if n == 0:
            self._on_eof()
            return
        try:
            if buffered:
                typing.cast(asyncio.BufferedProtocol, proto).buffer_updated(n)
            else:
                typing.cast(asyncio.Protocol, proto).data_received(data)
        except Exception as exc:
            self._force_close(exc)

    def _on_eof(self) -> None:
        self.pause_reading()
        keep_open = False
        try:
            keep_open = bool(typing.cast(asyncio.Protocol, self._protocol).eof_received())
        except Exception as exc:
            self._force_close(exc)
            return
        if not keep_open:
            self.close()

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
            if self._ahead is not None:
                self._ahead.remove(self)

    def resume_reading(self) -> None:
        if not self._reading and not self._closing:
            self._reading = True
            self._loop.add_reader(self._fd, self._read_ready)
            if self._ahead is not None:
                self._ahead.add(self)

    # writing
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._lost or self._eof_pending or not data:
            return
        # Writes made in one loop step (h11 hands over the request head, body and end
        # separately) leave in one send at the end of the step: one syscall per request.
        if not self._wbuf and not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)
        self._wbuf += data
        if not self._write_paused and len(self._wbuf) > self._high:
            self._write_paused = True
            typing.cast(asyncio.Protocol, self._protocol).pause_writing()

    def _flush(self) -> None:
        self._flush_pending = False
        if self._lost or not self._wbuf:
            return
        self._write_ready()
        if self._wbuf and not self._lost and not self._writer_added:
            self._writer_added = True
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        try:
            sent = self._sock.send(self._wbuf)
        except (BlockingIOError, InterruptedError):
            return
        except Exception as exc:
            self._force_close(exc)
            return
        del self._wbuf[:sent]
        if self._write_paused and len(self._wbuf) <= self._low:
            self._write_paused = False
            typing.cast(asyncio.Protocol, self._protocol).resume_writing()
        if self._wbuf:
            return
        if self._writer_added:
            self._writer_added = False
            self._loop.remove_writer(self._fd)
        if self._closing:
            self._schedule_lost(None)
        elif self._eof_pending:
            self._shutdown_write()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing or self._eof_pending:
            return
        self._eof_pending = True
        if not self._wbuf:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def get_write_buffer_size(self) -> int:
        return len(self._wbuf)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = _WRITE_HIGH if high is None else high
        self._low = self._high // 4 if low is None else low

    # lifecycle
    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self.pause_reading()
        if not self._wbuf:
            self._schedule_lost(None)

    def abort(self) -> None:
        self._force_close(None)

    def _force_close(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._wbuf.clear()
        if self._writer_added:
            self._writer_added = False
            self._loop.remove_writer(self._fd)
        self._closing = True
        self.pause_reading()
        self._schedule_lost(exc)

    def _schedule_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._loop.call_soon(self._connection_lost, exc)

    def _connection_lost(self, exc: Exception | None) -> None:
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._sock.close()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol
        self._buffered = isinstance(protocol, asyncio.BufferedProtocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def get_extra_info(self, name: str, default: typing.Any = None) -> typing.Any:
        return self._extra.get(name, default)


class _Inbox(asyncio.Protocol):
    """Receives the (decrypted) bytes of one connection, each read with its stamp."""

    def __init__(self, loop: asyncio.AbstractEventLoop, rx: RxTransport | None = None) -> None:
        self._loop = loop
        self.rx = rx
        self.transport: asyncio.Transport | None = None
        self.segments: collections.deque[tuple[int, bytes]] = collections.deque()
        self.size = 0
        self.eof = False
        self.exc: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._write_paused = False
        self._read_paused = False
        self.closed: asyncio.Future[None] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        rx = self.rx
        self.segments.append((rx.last_rx_ns if rx is not None and rx.last_rx_ns else time.perf_counter_ns(), data))
        self.size += len(data)
        self._wake()
        if self.size > _INBOX_HIGH and not self._read_paused and self.transport is not None:
            self._read_paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None and self.exc is None:
            self.exc = exc
        # The transport refers to us as its protocol: dropping our end of that cycle lets
        # a closed connection go by reference counting, not wait for (or, once the heap
        # is frozen, escape) the cyclic GC. No byte arrives after this, and every writer
        # checks `transport` for None.
        self.rx = None
        self.transport = None
        self._wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def take(self, max_bytes: int) -> tuple[int, bytes]:
        stamp, data = self.segments[0]
        if len(data) > max_bytes:
            self.segments[0] = (stamp, data[max_bytes:])
            data = data[:max_bytes]
        else:
            self.segments.popleft()
        self.size -= len(data)
        if self._read_paused and self.size <= _INBOX_HIGH // 4 and self.transport is not None:
            self._read_paused = False
            self.transport.resume_reading()
        return stamp, data

    async def wait_data(self) -> None:
        self._waiter = self._loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    async def drain(self) -> None:
        if not self._write_paused or self.closed.done():
            return
        self._drain = self._loop.create_future()
        await self._drain


class StampedStream(httpcore.AsyncNetworkStream):
    __slots__ = ("_inbox", "_rx", "_yielded_ns", "last_read_ns")

    def __init__(self, rx: RxTransport, inbox: _Inbox) -> None:
        self._rx = rx
        self._inbox = inbox
        self.last_read_ns = 0
        self._yielded_ns = time.perf_counter_ns()

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        inbox = self._inbox
        ahead = self._rx._ahead
        now = time.perf_counter_ns()
        if ahead is not None:
            ahead.tick(now)  # before handing the loop back: the rest of its round may be long
        if now - self._yielded_ns >= _YIELD_NS:
            # Hand the loop back (timeouts fire, other tasks run), then carry on with
            # whatever is buffered: the bytes keep the stamps they were read with.
            await asyncio.sleep(0)
            self._yielded_ns = now = time.perf_counter_ns()
            if ahead is not None:
                ahead.tick(now)
        if not inbox.segments:
            if inbox.eof:
                if inbox.exc is not None:
                    raise httpcore.ReadError(str(inbox.exc) or type(inbox.exc).__name__) from inbox.exc
                return b""
            try:
                if timeout is None:
                    await inbox.wait_data()
                else:
                    async with asyncio.timeout(timeout):
                        await inbox.wait_data()
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data for {timeout:g}s") from None
            finally:
                self._yielded_ns = time.perf_counter_ns()
            if not inbox.segments:
                if inbox.exc is not None:
                    raise httpcore.ReadError(str(inbox.exc) or type(inbox.exc).__name__) from inbox.exc
                return b""
        self.last_read_ns, data = inbox.take(min(max_bytes, _MAX_READ))
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        inbox = self._inbox
        if inbox.closed.done() or inbox.transport is None:
            raise httpcore.WriteError("connection closed")
        inbox.transport.write(buffer)
        try:
            if timeout is None:
                await inbox.drain()
            else:
                async with asyncio.timeout(timeout):
                    await inbox.drain()
        except TimeoutError:
            raise httpcore.WriteTimeout(f"write blocked for {timeout:g}s") from None
        if inbox.exc is not None:
            raise httpcore.WriteError(str(inbox.exc) or type(inbox.exc).__name__)

    async def aclose(self) -> None:
        inbox = self._inbox
        if inbox.transport is not None:
            inbox.transport.close()
        try:
            # a TLS close_notify exchange may hang on a dead peer: bound it, then abort
            async with asyncio.timeout(_CLOSE_WAIT):
                await asyncio.shield(inbox.closed)
        except TimeoutError:
            self._rx.abort()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(self._rx, self._inbox, ssl_context, server_hostname=server_hostname)
        except TimeoutError:
            self._rx.abort()
            raise httpcore.ConnectTimeout(f"TLS handshake took over {timeout:g}s") from None
        except (ssl.SSLError, *_READ_ERRORS) as exc:
            self._rx.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        if tls is None:
            raise httpcore.ConnectError("TLS handshake failed")
        self._inbox.transport = tls
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        transport = self._inbox.transport
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object") if transport is not None else None
        if info == "client_addr":
            return self._rx.get_extra_info("sockname")
        if info == "server_addr":
            return self._rx.get_extra_info("peername")
        if info == "socket":
            return self._rx.get_extra_info("socket")
        if info == "is_readable":
            # An idle keep-alive connection that is readable was closed (or spoke out of
            # turn) by the server: httpcore then drops it instead of reusing it.
            inbox = self._inbox
            if inbox.eof or inbox.segments:
                return True
            return _readable(self._rx.get_extra_info("socket"))
        return None


def _readable(sock: socket.socket | None) -> bool:
    if sock is None or sock.fileno() < 0:
        return True
    try:
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True


@functools.lru_cache(maxsize=1024)
def _literal_family(host: str) -> int | None:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    return socket.AF_INET6 if ip.version == 6 else socket.AF_INET


async def _resolve(host: str, port: int) -> list[tuple[int, typing.Any]]:
    family = _literal_family(host)  # a literal needs no resolver thread
    if family is not None:
        return [(family, (host, port))]
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [(family, addr) for family, _, _, _, addr in infos]


def _wrap(sock: socket.socket) -> StampedStream:
    loop = asyncio.get_running_loop()
    inbox = _Inbox(loop)
    rx = RxTransport(loop, sock, inbox)
    inbox.rx = rx
    rx.start()
    return StampedStream(rx, inbox)


class StampedBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None) -> StampedStream:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        try:
            async with asyncio.timeout(timeout):
                for family, addr in await _resolve(host, port):
                    sock = socket.socket(family, socket.SOCK_STREAM)
                    try:
                        sock.setblocking(False)
                        if local_address:
                            sock.bind((local_address, 0))
                        await loop.sock_connect(sock, addr)
                    except OSError as exc:
                        sock.close()
                        last = exc
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    break
                else:
                    raise last or OSError(f"no address for {host}")
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connect to {host}:{port} took over {timeout:g}s") from None
        except OSError as exc:
            # `last` is that error, and its traceback holds this frame: a reference cycle
            # per refused connection, which the GC policy's freeze could catch in flight
            last = None
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for opt in socket_options or ():
            sock.setsockopt(*opt)
        return _wrap(sock)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None) -> StampedStream:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            async with asyncio.timeout(timeout):
                await loop.sock_connect(sock, path)
        except TimeoutError:
            sock.close()
            raise httpcore.ConnectTimeout(f"connect to {path} took over {timeout:g}s") from None
        except OSError as exc:
            sock.close()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        for opt in socket_options or ():
            sock.setsockopt(*opt)
        return _wrap(sock)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def stamped_transport(*, verify: ssl.SSLContext | bool = True, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """An httpx transport whose connections use StampedBackend.

    httpx has no public hook for httpcore's network backend, so the pool it built is
    replaced by an identical one with our backend (same limits, TLS context, HTTP/1.1).
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    old = transport._pool
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=old._ssl_context,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        http1=True,
        http2=False,
        network_backend=StampedBackend(),
    )
    return transport


def arrival_ns(network_stream: object | None) -> int:
    """When the bytes just handed to us reached this host (now, if unknown)."""
    t = getattr(network_stream, "last_read_ns", 0)
    return t if t else time.perf_counter_ns()
