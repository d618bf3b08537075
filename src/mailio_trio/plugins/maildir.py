"""Local delivery into Maildir++ mailboxes (``queue/maildir``).

For each recipient in a local domain, a copy goes into that mailbox's inbox
(``new/``), or into its ``.Junk`` folder when an earlier queue handler
(``queue/spamd``) stored ``{"spam": True, ...}``. A sender in a local domain
gets a copy in its ``.Sent`` folder, in ``cur/`` with the ``S`` (seen) flag.
Mailboxes are at ``maildir.root / maildir.path``, ``%d`` the domain and ``%n``
the local part, both case-folded (see ``docs/maildir.md``).

Durability (the rule behind ``250``) in two phases, so the whole ``queue``
chain answers as one transaction (see ``mailio_trio._transaction``): the
handler *prepares* — every copy written to ``tmp/`` under a unique name and
fsync'd, where no mail reader looks — and accepts; once every other handler
accepted too, its *commit* step renames the copies into ``new/`` (or
``cur/``) and fsyncs the directories, still before the client's ``250``. If
a later handler refuses, raises or times out, or the client goes away, the
*rollback* step removes the ``tmp/`` files (and renamed copies, should a
later commit step fail). A failure to prepare or commit answers
``451 4.3.0`` with nothing left in any ``new/`` or ``cur/``, so a client
that retries never leaves a duplicated message behind, and a message the
client was refused never reaches a mailbox. A crash before the commit leaves
only ``tmp/`` files, which readers clean up (the Maildir specification has
them delete ``tmp/`` files untouched for 36 hours; Dovecot does).

Security: a local part becomes a path component through :func:`mailbox_name`:
as it is when :func:`unsafe_reason` finds nothing wrong with it (so existing
mailboxes keep their names), else with ``%``, ``/``, ``\\`` and ``.`` written as
``%2E``-style escapes — reversibly (:func:`local_part_of`), and never equal to
an unescaped name, since those contain no ``%``. What still cannot be a path
component (NUL, control characters, an empty name) and an unsafe domain are
refused (``rcpt/local`` does so at RCPT time with ``550 5.1.3``); the joined
path is checked once more to lie under the root.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from mailio_trio._durable import fsync_dir
from mailio_trio.chain import Chain, Handler, Request, Response
from mailio_trio.protocol import Address

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Iterable, Sequence

    from mailio_trio._handler_log import SessionLog
    from mailio_trio.config import Config, MaildirConfig

__all__ = [
    "Mailbox",
    "Pending",
    "commit",
    "discard",
    "expand",
    "local_mailbox",
    "local_part_of",
    "mailbox_name",
    "prepare",
    "register",
    "store",
    "unsafe_reason",
]

STORE_FAILED = "Local error in processing: cannot store the message"
_COPY_BUFFER = 1024 * 1024
_counter = itertools.count()
_MKDIR_LOCK = threading.Lock()


# --- names and paths ---------------------------------------------------------


def unsafe_reason(text: str) -> str | None:
    """Why ``text`` (a folded local part or domain) cannot be a path component, or ``None``.

    A domain with any of these is refused; a local part with any but NUL,
    control characters or nothing at all is escaped by :func:`mailbox_name`
    (never merely rewritten, so two addresses never share a mailbox):
    ``/`` and ``\\`` (separators), ``..`` anywhere (climbing out),
    a leading dot (hidden files, and Maildir++ folders are dot-directories),
    NUL and other control characters (truncated or forged names, log
    injection), and ``%`` (the obsolete percent-hack route, and ``%2e%2e``
    that a later URL-decoding tool could turn into ``..``).
    """
    if reason := _unrepresentable(text):
        return reason
    if "/" in text or "\\" in text:
        return "path separator"
    if ".." in text:
        return "'..'"
    if text.startswith("."):
        return "leading dot"
    if "%" in text:
        return "percent sign"
    return None


def _unrepresentable(text: str) -> str | None:
    """What no escaping makes a mailbox name: nothing at all, NUL and control characters."""
    if not text:
        return "empty name"
    if "\x00" in text:
        return "NUL character"
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in text):
        return "control character"
    return None


# What a valid RFC 5321 local part may hold that cannot stand in a path
# component: separators, the dots of "..", a leading dot (Maildir++ folders
# are dot-directories), and "%" itself, so that unescaping is unambiguous.
_ESCAPED = frozenset("%/\\.")


def mailbox_name(local_part: str) -> str:
    """The directory name for ``local_part`` (folded already, if folding is on).

    An ordinary local part (``bob``, ``first.last``) is its own name. Any other
    (a quoted ``"john..doe"``, ``".hidden"``, ``"a/b"``) has each ``%``, ``/``,
    ``\\`` and ``.`` replaced by ``%`` and two upper-case hex digits
    (``john%2E%2Edoe``): the result has no separator and no dot, and contains
    a ``%``, which no ordinary name does, so no two local parts share a
    mailbox. What is still unsafe after this (NUL, control characters, an empty
    name) is refused by :meth:`Mailbox.unsafe_reason`.
    """
    if unsafe_reason(local_part) is None:
        return local_part
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED else c for c in local_part)


def local_part_of(name: str) -> str:
    """The local part a :func:`mailbox_name` stands for (its inverse)."""
    if "%" not in name:
        return name
    return re.sub("%([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), name)


@attrs.frozen
class Mailbox:
    """A local mailbox: folded local part and domain, as used in paths and lookups."""

    local_part: str
    domain: str

    def __str__(self) -> str:
        return f"{self.local_part}@{self.domain}"

    def unsafe_reason(self) -> str | None:
        """Why this mailbox can have no directory, or ``None``.

        A local part :func:`unsafe_reason` refuses as it stands is escaped by
        :func:`mailbox_name`; only what escaping cannot mend is a reason here.
        """
        return _unrepresentable(self.local_part) or unsafe_reason(self.domain)

    def directory(self, cfg: MaildirConfig) -> Path:
        """The mailbox directory; raises ``ValueError`` if it would leave the root."""
        if reason := self.unsafe_reason():
            raise ValueError(f"unsafe mailbox name {str(self)!r}: {reason}")
        values = {"%d": self.domain, "%n": mailbox_name(self.local_part), "%%": "%"}
        relative = re.sub("%[dn%]", lambda m: values[m.group()], cfg.path)
        root = Path(os.path.abspath(cfg.root))
        path = Path(os.path.normpath(root / relative))
        if not path.is_relative_to(root) or path == root:
            raise ValueError(f"mailbox {str(self)!r} would be outside {root}")
        return path


def local_mailbox(config: Config, address: Address) -> Mailbox | None:
    """The mailbox ``address`` names if its domain is local, else ``None``.

    The domain-less ``Postmaster`` (RFC 5321 §4.5.1) is postmaster of the first
    local domain.
    """
    _, domain = address.key()  # lower case, IDNA A-labels where convertible
    domain = domain.rstrip(".")
    if not domain:
        domain = config.domains[0]
    elif not (config.maildir.any_domain or config.is_local_domain(domain)):
        return None
    local = address.local_part
    if config.maildir.fold_local_part:
        local = local.lower()
    return Mailbox(local, domain)


def _as_address(item: Address | str) -> Address:
    if isinstance(item, Address):
        return item
    local, _, domain = str(item).rpartition("@")
    return Address(local, domain)


async def expand(config: Config, address: Address) -> list[Address] | None:
    """Run the ``maildir.extend`` hook: the addresses ``address`` delivers to.

    Returns:
      ``[address]`` without a hook; the hook's list otherwise (``[]`` to drop);
      ``None`` when the hook says there is no such user.
    """
    hook = config.maildir.extend
    if hook is None:
        return [address]
    result = await hook(address)
    if result is None:
        return None
    return [_as_address(item) for item in result]


def known_mailboxes(config: Config) -> frozenset[Mailbox] | None:
    """The configured set of mailboxes, folded like addresses; ``None`` when not set.

    Asked per RCPT and per message; folded once per configuration (a reload
    brings a new ``Config``), not per call over every listed mailbox.
    """
    global _known  # a one-entry cache, by identity (Config is unhashable)
    if _known is not None and _known[0] is config:
        return _known[1]
    boxes: frozenset[Mailbox] | None = None
    if config.maildir.mailboxes:
        boxes = frozenset(
            box
            for item in config.maildir.mailboxes
            if (box := local_mailbox(config, _as_address(item))) is not None
        )
    _known = (config, boxes)
    return boxes


_known: tuple[Config, frozenset[Mailbox] | None] | None = None


# --- writing -----------------------------------------------------------------


@attrs.frozen
class Pending:
    """One prepared copy: written and fsync'd at ``tmp``, to be renamed to ``dest``."""

    tmp: Path
    dest: Path


@attrs.frozen
class Placement:
    """One copy to write: into ``new/``, or when ``seen`` into ``cur/`` with ``:2,S``.

    ``folder`` is a Maildir++ folder (``.Sent``) inside ``mailbox``, or ``None`` for the inbox.
    """

    mailbox: Path
    folder: str | None = None
    seen: bool = False

    @property
    def path(self) -> Path:
        return self.mailbox / self.folder if self.folder else self.mailbox


def _makedirs_durable(path: Path) -> None:
    """``mkdir -p`` that fsyncs each parent whose entries changed, so the path survives a crash."""
    if path.is_dir():
        return
    # Two first deliveries to one new mailbox at once (delivery threads here)
    # must not fail each other with FileExistsError: one makes the directories
    # while the other waits, then finds them made and durable.
    with _MKDIR_LOCK:
        _makedirs_locked(path)


def _makedirs_locked(path: Path) -> None:
    if path.is_dir():
        return
    _makedirs_locked(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        if not path.is_dir():
            raise  # a file stands where the directory should be
        # Made a moment ago by another process (--workers): its entry may not
        # be on disk yet, so the parent is fsync'd here all the same.
    fsync_dir(path.parent)


def _ensure_maildir(folder: Path, *, subfolder: bool) -> None:
    for sub in ("tmp", "new", "cur"):
        _makedirs_durable(folder / sub)
    if subfolder:
        # Maildir++: a folder is marked by an empty "maildirfolder" file (Courier, Dovecot).
        marker = folder / "maildirfolder"
        if not marker.exists():
            marker.touch()
            fsync_dir(folder)


def _unique_name(hostname: str, size: int) -> str:
    # The Courier/Dovecot form: time, microseconds, pid, a counter and randomness
    # make the name unique across processes; ",S=" lets IMAP servers skip a stat.
    now = time.time()
    host = hostname.replace("/", "\\057").replace(":", "\\072")
    return (
        f"{int(now)}.M{int(now % 1 * 1_000_000)}P{os.getpid()}Q{next(_counter)}"
        f"R{secrets.token_hex(8)}.{host},S={size}"
    )


def prepare(
    source: Path, placements: Sequence[Placement], hostname: str, pending: list[Pending]
) -> None:
    """Phase one: copy ``source`` into each placement's ``tmp/`` and fsync it. Blocking.

    Nothing is visible to a mail reader yet. Each copy is appended to
    ``pending`` as soon as its file exists, so a rollback registered before
    this ran finds whatever it made, even if it stopped halfway.

    Raises:
      OSError: What was made is removed again.
    """
    size = source.stat().st_size
    try:
        for placement in placements:
            _ensure_maildir(placement.mailbox, subfolder=False)
            folder = placement.path
            if placement.folder:
                _ensure_maildir(folder, subfolder=True)
            name = _unique_name(hostname, size)
            tmp = folder / "tmp" / name
            dest = folder / "cur" / f"{name}:2,S" if placement.seen else folder / "new" / name
            with source.open("rb") as src, tmp.open("xb") as dst:
                pending.append(Pending(tmp, dest))
                shutil.copyfileobj(src, dst, _COPY_BUFFER)
                dst.flush()
                os.fsync(dst.fileno())
    except BaseException:
        discard(pending)
        raise


def commit(pending: Sequence[Pending]) -> list[Path]:
    """Phase two: rename each prepared copy into ``new/`` (``cur/``), fsync the directories.

    Blocking. The renames are the only step left once the data is on disk,
    so a failure here is rare (a file where ``new/`` should be, a broken disk).

    Returns:
      The delivered files.

    Raises:
      OSError: Every copy, renamed or not, is removed again.
    """
    try:
        for copy in pending:
            os.rename(copy.tmp, copy.dest)
        for directory in {copy.dest.parent for copy in pending}:
            fsync_dir(directory)
    except BaseException:
        discard(pending)
        raise
    return [copy.dest for copy in pending]


def discard(pending: Sequence[Pending]) -> None:
    """Remove every copy in ``pending``, prepared or already renamed into place. Blocking.

    Raises:
      OSError: The first removal that failed for another reason than the file
        not being there; the others were still tried.
    """
    first: OSError | None = None
    removed_from: set[Path] = set()
    for copy in pending:
        for path in (copy.dest, copy.tmp):
            try:
                path.unlink()
            except (FileNotFoundError, NotADirectoryError):
                continue  # never renamed, or no directory where new/ should be
            except OSError as exc:
                first = first or exc
                continue
            if path is copy.dest:
                removed_from.add(path.parent)
    # A removed delivered copy must stay removed after a crash, as a rename must stay done.
    for directory in removed_from:
        try:
            fsync_dir(directory)
        except OSError as exc:
            first = first or exc
    if first is not None:
        raise first


def store(source: Path, placements: Sequence[Placement], hostname: str) -> list[Path]:
    """Copy ``source`` into each placement durably; all or nothing. Blocking.

    Both phases at once, for callers outside a ``queue`` transaction.

    Returns:
      The delivered files.

    Raises:
      OSError: Nothing of this message is left in any ``new/`` or ``cur/``.
    """
    pending: list[Pending] = []
    prepare(source, placements, hostname, pending)
    return commit(pending)


# --- the handler ---------------------------------------------------------------


def _is_spam(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("spam") is True


async def _targets(req: Request, res: Response, recipient: Address) -> Iterable[Address]:
    """Where ``recipient`` delivers: what ``rcpt/local`` found at RCPT time, else the hook."""
    expansions = res.get("rcpt/local")
    if isinstance(expansions, Mapping) and recipient.key() in expansions:
        found: list[Address] = expansions[recipient.key()]
        return found
    return await expand(req.session.config, recipient) or ()


def _refusal(exc: OSError) -> tuple[int, str, str]:
    """One recipient's reply when its mailbox cannot take the copy (LMTP)."""
    if exc.errno in _FULL:
        return 452, "Mailbox full", "4.2.2"  # RFC 3463: mailbox full, try later
    return 451, STORE_FAILED, "4.3.0"


_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


@attrs.frozen
class _Batch:
    """Copies prepared and committed together, for ``owners`` (``None``: the whole message)."""

    placements: list[Placement]
    owners: list[Address] | None
    pending: list[Pending] = attrs.field(factory=list)


def _prepare_batches(
    source: Path, batches: Sequence[_Batch], hostname: str
) -> list[OSError | None]:
    """:func:`prepare` each batch on its own; what failed, by batch. Blocking."""
    failures: list[OSError | None] = []
    for batch in batches:
        try:
            prepare(source, batch.placements, hostname, batch.pending)
        except OSError as exc:
            failures.append(exc)
        else:
            failures.append(None)
    return failures


async def deliver(req: Request, res: Response) -> None:
    message = req.message
    assert message is not None
    config = req.session.config
    # LMTP answers per recipient (RFC 2033 §4.2): each mailbox is its own batch,
    # so one that cannot take the copy refuses only the recipients it serves.
    per_recipient = config.lmtp
    refused = req.refused_recipients
    known = known_mailboxes(config)
    # Spam by spamd's verdict, or a failed DMARC p=quarantine (queue/mailauth).
    junk = _is_spam(res.get("queue/spamd")) or getattr(res.get("queue/mailauth"), "junk", False)
    # By path: an alias and its target get one copy, owned by both recipients.
    placements: dict[Path, tuple[Placement, list[Address]]] = {}
    sent: Placement | None = None
    try:
        for recipient in message.envelope.recipients:
            if local_mailbox(config, recipient) is None or recipient.key() in refused:
                continue  # a foreign recipient is the relay's business
            if recipient.domain and config.relay.transport_for(recipient.domain) is not None:
                continue  # its domain's transport delivers it, from the relay spool
            for target in await _targets(req, res, recipient):
                box = local_mailbox(config, target)
                if box is None:
                    res.log.warning("%s expands to foreign %s: not relayed yet", recipient, target)
                    continue
                if known is not None and box not in known:
                    continue
                placement = Placement(
                    box.directory(config.maildir), config.maildir.junk_folder if junk else None
                )
                owners = placements.setdefault(placement.path, (placement, []))[1]
                if recipient not in owners:
                    owners.append(recipient)
        sender = message.envelope.sender
        sender_box = local_mailbox(config, sender) if sender is not None else None
        if (
            sender_box is not None
            and sender_box.unsafe_reason() is None
            and (known is None or sender_box in known)
        ):
            sent = Placement(
                sender_box.directory(config.maildir), config.maildir.sent_folder, seen=True
            )
            if sent.path in placements:
                sent = None
    except ValueError as exc:
        res.log.error("refusing to store %s: %s", message.id, exc)
        res.reject(451, STORE_FAILED, "4.3.0")
        return
    if per_recipient:
        batches = [_Batch([placement], owners) for placement, owners in placements.values()]
        if sent is not None:
            batches.append(_Batch([sent], None))
    else:
        everything = [placement for placement, _ in placements.values()]
        batches = [_Batch([*everything, *([sent] if sent else [])], None)]
    batches = [batch for batch in batches if batch.placements]
    if batches:
        log = res.log
        for batch in batches:
            # Registered before anything is written: a timeout or a later refusal
            # finds every tmp/ file, however far the copying got.
            req.on_rollback(_rollback_step(batch, message.id, log), recipients=batch.owners)
        failures = await trio.to_thread.run_sync(
            _prepare_batches, message.path, batches, config.hostname
        )
        for batch, failure in zip(batches, failures, strict=True):
            if failure is None:
                req.on_commit(_commit_step(batch, message.id, log), recipients=batch.owners)
                continue
            res.log.error("cannot store %s: %s", message.id, failure)
            if batch.owners is None:
                res.reject(451, STORE_FAILED, "4.3.0")
                return
            for owner in batch.owners:
                req.reject_recipient(owner, *_refusal(failure))
    res.accept()


def _rollback_step(
    batch: _Batch, message_id: str, log: SessionLog
) -> Callable[[], Awaitable[None]]:
    async def roll_back() -> None:
        await trio.to_thread.run_sync(discard, batch.pending)
        if batch.pending:
            log.info("%s: %d maildir copies removed", message_id, len(batch.pending))

    return roll_back


def _commit_step(batch: _Batch, message_id: str, log: SessionLog) -> Callable[[], Awaitable[None]]:
    async def make_visible() -> None:
        files = await trio.to_thread.run_sync(commit, batch.pending)
        log.info("%s stored in %d maildir(s)", message_id, len(files))

    return make_visible


def register(chain: Chain) -> None:
    # Spam verdicts decide the folder: after queue/spamd, whenever it is registered.
    chain.add(
        Handler(
            command="queue",
            name="maildir",
            func=deliver,
            after=("mailauth", "spamd"),
            if_present=True,
        )
    )
