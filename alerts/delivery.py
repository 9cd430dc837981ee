"""Delivery: one bounded queue and one worker per receiver, retries with capped backoff
(Retry-After honoured), the outbox a stop could not deliver (saved, queued again at the
next start), `send_test`, and the sent/retried/failed/dropped counters.

A hanging SMTP server or a dead webhook only ever delays its own messages, never another
receiver's, and never the evaluation that queued them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import structlog

from alerts.model import AlertMetrics, Notification
from alerts.notifiers import DeliveryError, Notifier

log = structlog.get_logger("llm_vitals.alerts")

MAX_ATTEMPTS = 10
MAX_BACKOFF = 300.0
QUEUE_SIZE = 1000  # notifications waiting per receiver; beyond it the oldest is dropped (and counted)


class Delivery:
    def __init__(self, notifiers: dict[str, Notifier], *, metrics: AlertMetrics | None,
                 persist: Callable[[], Awaitable[None]], queue_size: int = QUEUE_SIZE) -> None:
        self.notifiers = notifiers
        self.metrics = metrics
        self._persist = persist  # a notifier's state changed (e.g. a new Slack thread): save it now
        self.queues: dict[str, asyncio.Queue[tuple[Notification, int]]] = {
            name: asyncio.Queue(queue_size) for name in notifiers}
        self.workers: dict[str, asyncio.Task[None]] = {}
        # what a stop could not deliver by its deadline: saved, and queued again at the next start
        self.inflight: dict[str, tuple[Notification, int]] = {}
        self.outbox: list[Notification] = []

    def notifier(self, receiver: str) -> Notifier | None:
        return self.notifiers.get(receiver)

    # -- queueing ------------------------------------------------------------------
    def send(self, n: Notification) -> None:
        # Freeze the alerts as they are now: a retry (or a message waiting behind a slow
        # one) says what was true when it was made, not what later evaluations changed.
        n.events = [replace(e, alert=replace(e.alert, labels=dict(e.alert.labels))) for e in n.events]
        self.enqueue(n, 0)

    def enqueue(self, n: Notification, attempt: int) -> None:
        q = self.queues.get(n.receiver)
        if q is None:
            self._count(n.receiver, "failed")
            log.error("notification_unknown_receiver", receiver=n.receiver)
            return
        if q.full():  # never wait: evaluation must go on; the newest state matters most
            old, _ = q.get_nowait()
            q.task_done()
            self._count(n.receiver, "dropped")
            log.error("notification_dropped", receiver=n.receiver, title=old.title(), queued=q.qsize() + 1)
        q.put_nowait((n, attempt))
        self._depth(n.receiver)

    def _depth(self, receiver: str) -> None:
        if self.metrics is not None and receiver in self.queues:
            self.metrics.queue_depth.labels("notify_" + receiver).set(self.queues[receiver].qsize())

    # -- sending -------------------------------------------------------------------
    async def _loop(self, receiver: str) -> None:
        q = self.queues[receiver]
        while True:
            n, attempt = await q.get()
            self.inflight[receiver] = (n, attempt)
            try:
                self._depth(receiver)
                await self.deliver(n, attempt)
            except Exception:  # deliver handles its own errors; this keeps the worker alive regardless
                log.exception("notification_worker_error", receiver=receiver)
            finally:
                q.task_done()
                if not (t := asyncio.current_task()) or not t.cancelling():
                    self.inflight.pop(receiver, None)

    async def deliver(self, n: Notification, attempt: int) -> bool:
        """Deliver, retrying in place: the receiver's later messages wait behind this one (only
        they do), so a page retried after a refusal never lands after its own resolve."""
        while True:
            ok, delay = await self._attempt(n, attempt)
            if delay is None:
                return ok
            attempt += 1
            await asyncio.sleep(delay)

    async def _attempt(self, n: Notification, attempt: int) -> tuple[bool, float | None]:
        """One try: (delivered, seconds until the retry, or None for no retry)."""
        notifier = self.notifiers.get(n.receiver)
        if notifier is None:
            log.error("notification_unknown_receiver", receiver=n.receiver)
            return False, None
        before = notifier.state()
        try:
            await asyncio.wait_for(notifier.send(n), notifier.cfg.timeout + 5)
        except (DeliveryError, TimeoutError) as exc:
            permanent = isinstance(exc, DeliveryError) and exc.permanent
            retry_after = exc.retry_after if isinstance(exc, DeliveryError) else None
            if permanent or attempt + 1 >= MAX_ATTEMPTS or n.test:
                self._count(n.receiver, "failed")
                log.error("notification_failed", receiver=n.receiver, title=n.title(), error=str(exc) or "timeout",
                          attempts=attempt + 1)
                return False, None
            # capped: the receiver's later messages wait behind this retry
            delay = min(MAX_BACKOFF, retry_after if retry_after is not None else 2.0 ** attempt)
            self._count(n.receiver, "retried")
            log.warning("notification_retry", receiver=n.receiver, error=str(exc) or "timeout", retry_in=delay)
            return False, delay
        except Exception as exc:
            self._count(n.receiver, "failed")
            log.exception("notification_error", receiver=n.receiver, error=type(exc).__name__)
            return False, None
        self._count(n.receiver, "sent")
        log.info("notification_sent", receiver=n.receiver, title=n.title())
        if notifier.state() != before:  # e.g. a new Slack thread: persist it now, not at the next evaluation
            try:
                await self._persist()
            except Exception:
                log.exception("alert_state_save_failed")
        return True, None

    def _count(self, receiver: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.notifications.labels(receiver, outcome).inc()

    async def send_test(self, receiver: str) -> tuple[bool, str]:
        if receiver not in self.notifiers:
            return False, f"unknown receiver {receiver!r} (known: {', '.join(sorted(self.notifiers)) or 'none'})"
        n = Notification(receiver, {}, [], "", test=True)
        ok = await self.deliver(n, 0)
        return ok, "sent" if ok else "failed (see the daemon log)"

    # -- across restarts -------------------------------------------------------------
    def states(self) -> dict[str, dict[str, Any]]:
        """What each notifier must remember across a restart (e.g. Slack threads)."""
        return {name: st for name, n in self.notifiers.items() if (st := n.state()) is not None}

    def restore(self, states: dict[str, dict[str, Any]], outbox: list[Notification]) -> None:
        for name, st in states.items():
            if name in self.notifiers:  # Slack threads: a resolve after a restart goes in the incident's thread
                try:
                    self.notifiers[name].restore(st)
                except Exception:
                    log.exception("notifier_state_restore_failed", receiver=name)
        for n in outbox:
            self.enqueue(n, 0)
        if outbox:
            log.info("notifications_restored", count=len(outbox))

    # -- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        for name, notifier in self.notifiers.items():
            try:
                notifier.validate()
            except ValueError as exc:
                log.error("receiver_invalid", receiver=name, error=str(exc))
        for name in self.queues:
            self.workers[name] = asyncio.create_task(self._loop(name), name=f"alert-delivery-{name}")

    async def stop(self, deadline: float) -> None:
        """Drain within `deadline`, then stop the workers; what is left becomes the outbox."""
        if self.workers:  # let the workers finish what is queued, within the deadline
            try:
                await asyncio.wait_for(asyncio.gather(*(q.join() for q in self.queues.values())), deadline)
            except TimeoutError:
                left = {name: q.qsize() for name, q in self.queues.items() if q.qsize()}
                log.warning("notification_queues_not_drained", left=left)
        tasks = list(self.workers.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.workers.clear()
        # Undelivered (a receiver down or slow past the deadline): kept for the next start, so
        # a page or a resolve is late rather than lost. The one being sent may have landed:
        # it goes again (a duplicate beats a lost page).
        undelivered = [n for n, _ in self.inflight.values()]
        self.inflight.clear()
        for q in self.queues.values():
            while not q.empty():
                undelivered.append(q.get_nowait()[0])
                q.task_done()
        self.outbox = [n for n in undelivered if not n.test]
        if self.outbox:
            log.warning("notifications_kept_for_next_start", count=len(self.outbox),
                        receivers=sorted({n.receiver for n in self.outbox}))
