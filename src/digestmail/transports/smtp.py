"""SMTP transport: a pool of persistent connections, each in its own thread.

One SMTP round trip per command makes a single connection latency-bound, so
``settings.smtp_connections`` connections (default 4) send in parallel. Each
message is spliced from a template encoded once (``mime.CompiledMessage``), already
in its wire form (dot-stuffed, terminated), and goes out as MAIL, RCPT, DATA and the
prepared bytes: ``smtplib.sendmail`` would rewrite every 43 KiB message with a regular
expression (150–350 µs of a core, holding the GIL) for what ``render_wire`` did once.
Per-message outcomes follow the reply code: 5xx is a permanent rejection (a bounce:
``Rejected.bounced``), 4xx and a lost connection are retried a bounded number of
times with backoff, then reported as temporary rejections. With
``DIGESTMAIL_BOUNCE_ADDRESS`` each message's envelope sender is its own VERP return
path (``bounces.return_path``), so that a later bounce message names its delivery.
Whole-batch problems (cannot connect, credentials refused) raise ``TransportError``
when nothing of the batch went out.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import random
import smtplib
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from email.utils import parseaddr
from functools import partial

from digestmail import bounces
from digestmail.config import Settings, SMTPConfig
from digestmail.transports.base import (
    Accepted,
    BatchResult,
    Handover,
    MessageTemplate,
    Recipient,
    Rejected,
    TransportError,
)
from digestmail.transports.mime import CompiledMessage, InvalidRecipient, WireMessage
from digestmail.transports.outbox import sender_domain

log = logging.getLogger(__name__)


class _Fatal(Exception):
    """A failure that no retry of this batch fixes on this connection (raised as a batch error)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class _Temporary(Exception):
    """A per-message failure worth trying again."""


class _Connection:
    """One persistent SMTP session, re-opened after a drop."""

    def __init__(
        self, config: SMTPConfig, timeout: float, ssl_context: ssl.SSLContext | None
    ) -> None:
        self.config = config
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.smtp: smtplib.SMTP | None = None

    def _context(self) -> ssl.SSLContext:
        return self.ssl_context or ssl.create_default_context()

    def open(self) -> smtplib.SMTP:
        if self.smtp is not None:
            return self.smtp
        cfg = self.config
        where = cfg.redacted()
        try:
            smtp: smtplib.SMTP
            if cfg.implicit_tls:
                smtp = smtplib.SMTP_SSL(
                    cfg.host,
                    cfg.port,
                    local_hostname=cfg.local_hostname,
                    timeout=self.timeout,
                    context=self._context(),
                )
            else:
                smtp = smtplib.SMTP(
                    cfg.host, cfg.port, local_hostname=cfg.local_hostname, timeout=self.timeout
                )
            try:
                smtp.ehlo()
                if cfg.starttls:
                    smtp.starttls(context=self._context())
                    smtp.ehlo()
                if cfg.username:
                    smtp.login(cfg.username, cfg.password or "")
            except BaseException:
                smtp.close()
                raise
        except smtplib.SMTPAuthenticationError as exc:
            raise _Fatal(
                f"the SMTP server {where} refused the credentials: {_reply(exc)}", permanent=True
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise _Fatal(f"the SMTP server {where}: {exc}", permanent=True) from None
        except smtplib.SMTPResponseException as exc:
            raise _Fatal(
                f"the SMTP server {where} answered {_reply(exc)}",
                permanent=500 <= exc.smtp_code < 600,
            ) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise _Fatal(f"cannot connect to {where}: {exc}", permanent=False) from None
        self.smtp = smtp
        return smtp

    def drop(self) -> None:
        if self.smtp is not None:
            try:
                self.smtp.close()
            finally:
                self.smtp = None

    def close(self) -> None:
        if self.smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self.smtp.quit()
            self.drop()

    def send(self, sender: str, rcpt: str, message: WireMessage) -> None:
        """Send one message; raises ``_Permanent``, ``_Temporary`` or ``_Fatal``."""
        smtp = self.open()
        try:
            _transact(smtp, sender, rcpt, message)
        except smtplib.SMTPRecipientsRefused as exc:
            code, msg = exc.recipients.get(rcpt, (550, b"refused"))
            self._classify(code, msg)
        except smtplib.SMTPSenderRefused as exc:
            if 500 <= exc.smtp_code < 600:
                raise _Fatal(
                    f"the SMTP server refused the sender {sender}: {_reply(exc)}", permanent=True
                ) from None
            self._classify(exc.smtp_code, exc.smtp_error)
        except smtplib.SMTPResponseException as exc:
            self._classify(exc.smtp_code, exc.smtp_error)
        except (smtplib.SMTPException, OSError) as exc:
            # Connection lost or timed out: the next attempt reconnects.
            self.drop()
            raise _Temporary(f"connection lost: {exc or type(exc).__name__}") from None

    def _classify(self, code: int, msg: bytes | str) -> None:
        text = f"{code} {_text(msg)}"
        if code == 421:  # the server is closing this session
            self.drop()
        if 500 <= code < 600:
            raise _Permanent(text)
        raise _Temporary(text)


class _Permanent(Exception):
    """The server refused this message for good (5xx)."""


def _abandon(smtp: smtplib.SMTP, code: int) -> None:
    """After a refusal: the server is going away (421), or the transaction is reset."""
    if code == 421:
        smtp.close()
    else:
        with contextlib.suppress(smtplib.SMTPServerDisconnected):
            smtp.rset()


def _transact(smtp: smtplib.SMTP, sender: str, rcpt: str, message: WireMessage) -> None:
    """One mail transaction, as ``smtplib.SMTP.sendmail`` does it, raising the same
    exceptions, but sending the prepared wire bytes as they are.

    The addresses go out as given: ``send_batch`` checked the sender once and
    ``render_wire`` refused unusable recipients (``SMTP.mail``/``rcpt`` would re-parse
    both with ``email.utils.parseaddr``, ~80 µs a message).
    """
    smtp.ehlo_or_helo_if_needed()
    size = f" SIZE={message.size}" if smtp.does_esmtp and smtp.has_extn("size") else ""
    code, reply = smtp.docmd("MAIL", f"FROM:<{sender}>{size}")
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPSenderRefused(code, reply, sender)
    code, reply = smtp.docmd("RCPT", f"TO:<{rcpt}>")
    if code not in (250, 251):
        _abandon(smtp, code)
        raise smtplib.SMTPRecipientsRefused({rcpt: (code, reply)})
    code, reply = smtp.docmd("DATA")
    if code != 354:
        _abandon(smtp, code)
        raise smtplib.SMTPDataError(code, reply)
    smtp.send(message.wire)
    code, reply = smtp.getreply()
    if code != 250:
        _abandon(smtp, code)
        raise smtplib.SMTPDataError(code, reply)


def _text(msg: bytes | str) -> str:
    return msg.decode("utf-8", "replace") if isinstance(msg, bytes) else str(msg)


def _reply(exc: smtplib.SMTPResponseException) -> str:
    return f"{exc.smtp_code} {_text(exc.smtp_error)}"


class SMTPTransport:
    name = "smtp"
    max_batch = 1000
    # One batch already keeps every connection busy; a second one, queued behind it,
    # leaves them no idle moment between batches. More would only make a pause wait
    # for more messages.
    max_in_flight = 2

    def __init__(
        self,
        settings: Settings,
        *,
        retry_delays: Sequence[float] = (1.0, 5.0),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        """``retry_delays``: seconds before each further attempt of a temporary failure.

        ``ssl_context`` replaces the default (system CAs; honours ``SSL_CERT_FILE``).
        """
        config = settings.smtp
        if config is None:
            raise ValueError("the smtp transport needs DIGESTMAIL_SMTP_URL")
        self.config = config
        self.settings = settings
        self.domain = sender_domain(settings.from_)
        self.retry_delays = tuple(retry_delays)
        self.size = settings.smtp_connections
        self._pool: queue.SimpleQueue[_Connection] = queue.SimpleQueue()
        for _ in range(self.size):
            self._pool.put(_Connection(self.config, settings.smtp_timeout, ssl_context))
        self._executor = ThreadPoolExecutor(self.size, thread_name_prefix="digestmail-smtp")
        self._compiled: CompiledMessage | None = None
        self._lock = threading.Lock()
        cfg = self.config
        plain = cfg.username and not (cfg.implicit_tls or cfg.starttls)
        if plain and cfg.host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("SMTP password sent without TLS to %s", self.config.redacted())

    def compiled(self, template: MessageTemplate) -> CompiledMessage:
        with self._lock:
            if self._compiled is None or self._compiled.template != template:
                self._compiled = CompiledMessage(template, domain=self.domain)
            return self._compiled

    def prepare(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> Handover:
        """Nothing to do ahead: the whole batch is handed over in the call."""
        return partial(self.send_batch, template, recipients)

    def send_batch(self, template: MessageTemplate, recipients: Sequence[Recipient]) -> BatchResult:
        compiled = self.compiled(template)
        sender = parseaddr(template.from_addr)[1]
        # It goes into MAIL FROM as it is (see ``_transact``).
        if "@" not in sender or not sender.isascii() or any(c in sender for c in "<> \t\r\n"):
            raise TransportError(
                f"no usable sender address in {template.from_addr!r}", permanent=True
            )
        slices = [recipients[i :: self.size] for i in range(self.size)]
        futures = [
            self._executor.submit(self._work, compiled, sender, part) for part in slices if part
        ]
        result = BatchResult()
        fatal: _Fatal | None = None
        for future in futures:
            part, error = future.result()
            result.accepted.extend(part.accepted)
            result.rejected.extend(part.rejected)
            if error is not None and (fatal is None or error.permanent):
                fatal = error
        if fatal is not None and not result.accepted:
            raise TransportError(str(fatal), permanent=fatal.permanent)
        return result

    def _work(
        self, compiled: CompiledMessage, sender: str, recipients: Sequence[Recipient]
    ) -> tuple[BatchResult, _Fatal | None]:
        """One worker's share of a batch, on one connection of the pool."""
        conn = self._pool.get()
        result = BatchResult()
        try:
            pending = list(recipients)
            errors: dict[str, str] = {}
            for attempt in range(len(self.retry_delays) + 1):
                if attempt:
                    delay = self.retry_delays[attempt - 1]
                    time.sleep(delay * random.uniform(0.8, 1.2))
                retry: list[Recipient] = []
                for i, recipient in enumerate(pending):
                    envelope = bounces.return_path(self.settings, recipient.delivery_id) or sender
                    try:
                        message = compiled.render_wire(recipient)
                        conn.send(envelope, recipient.email, message)
                    except InvalidRecipient as exc:
                        result.rejected.append(Rejected(recipient.email, str(exc), permanent=True))
                    except _Permanent as exc:
                        result.rejected.append(
                            Rejected(recipient.email, str(exc), permanent=True, bounced=True)
                        )
                    except _Temporary as exc:
                        errors[recipient.email] = str(exc)
                        retry.append(recipient)
                    except _Fatal as exc:
                        if exc.permanent or attempt == len(self.retry_delays):
                            # Not sent; the caller decides (batch error or temporary rejection).
                            for r in [*retry, *pending[i:]]:
                                result.rejected.append(Rejected(r.email, str(exc), permanent=False))
                            return result, exc
                        errors[recipient.email] = str(exc)
                        retry.extend(pending[i:])
                        break
                    else:
                        result.accepted.append(Accepted(recipient.email, message.message_id))
                pending = retry
                if not pending:
                    break
            for recipient in pending:
                result.rejected.append(
                    Rejected(recipient.email, errors.get(recipient.email, "not sent"), False)
                )
            return result, None
        finally:
            self._pool.put(conn)

    def close(self) -> None:
        """Finish what is running, then say QUIT on every connection (idempotent)."""
        self._executor.shutdown(wait=True)
        while True:
            try:
                conn = self._pool.get_nowait()
            except queue.Empty:
                break
            conn.close()
