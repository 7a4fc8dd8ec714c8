"""A throw-away Dovecot IMAP server on 127.0.0.1 for the bounce-mailbox tests.

Debian's ``dovecot-imapd`` with a config, password file and maildir of its own in a
temporary directory; started with ``-F`` and stopped by its process id. As root, the
mail is owned by ``nobody`` and Dovecot's own unprivileged users run its services;
as anyone else, everything runs as that user.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.processes import free_port, stop

DOVECOT = Path("/usr/sbin/dovecot")
USER = "bounces"
PASSWORD = "imap-test-password"


class DovecotUnavailable(RuntimeError):
    pass


@dataclass
class ImapServer:
    port: int
    root: Path
    uid: int
    gid: int

    def url(self, folder: str = "INBOX") -> str:
        return f"imap://{USER}:{PASSWORD}@127.0.0.1:{self.port}/{folder}"

    @property
    def maildir(self) -> Path:
        return self.root / "mail" / USER

    def folder(self, name: str) -> Path:
        return self.maildir if name == "INBOX" else self.maildir / f".{name}"

    def deliver(self, data: bytes, name: str) -> None:
        """Put a message in the inbox the way a delivery agent does (tmp, then new)."""
        tmp = self.maildir / "tmp" / name
        tmp.write_bytes(data)
        os.chown(tmp, self.uid, self.gid)
        tmp.rename(self.maildir / "new" / name)

    def messages(self, folder: str = "INBOX") -> list[bytes]:
        base = self.folder(folder)
        return [p.read_bytes() for sub in ("new", "cur") for p in sorted((base / sub).glob("*"))]

    def clear(self) -> None:
        for folder in ("INBOX", "Processed"):
            for sub in ("new", "cur"):
                for path in (self.folder(folder) / sub).glob("*"):
                    path.unlink()


@contextlib.contextmanager
def dovecot() -> Iterator[ImapServer]:
    if not DOVECOT.exists():
        raise DovecotUnavailable(f"{DOVECOT} is not installed (apt-get install dovecot-imapd)")
    root = Path(tempfile.mkdtemp(prefix="digestmail-imap-"))
    os.chmod(root, 0o755)
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
        internal, login = "dovecot", "dovenull"
        group = grp.getgrgid(pwd.getpwnam(internal).pw_gid).gr_name
    else:
        uid, gid = os.getuid(), os.getgid()
        internal = login = pwd.getpwuid(uid).pw_name
        group = grp.getgrgid(gid).gr_name
    port = free_port()
    for sub in ("new", "cur", "tmp"):
        (root / "mail" / USER / sub).mkdir(parents=True)
    (root / "home" / USER).mkdir(parents=True)
    for path in [root / "mail", root / "home", *root.glob("mail/**"), *root.glob("home/**")]:
        os.chown(path, uid, gid)
    (root / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    (root / "dovecot.conf").write_text(
        f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
mail_location = maildir:{root}/mail/%u
namespace inbox {{
  inbox = yes
  separator = /
}}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
"""
    )
    process = subprocess.Popen(
        [str(DOVECOT), "-F", "-c", str(root / "dovecot.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                log = (root / "dovecot.log").read_text() if (root / "dovecot.log").exists() else ""
                err = process.stderr.read().decode() if process.stderr else ""
                raise DovecotUnavailable(f"dovecot did not start: {err} {log}"[-2000:])
            time.sleep(0.05)
        yield ImapServer(port, root, uid, gid)
    finally:
        stop(process)
        shutil.rmtree(root, ignore_errors=True)
