"""The default logger (`wandb_offline`) makes no network attempt at all: under `strace -f` (every thread and child,
wandb-core included) a W&B run through research.tracking, and `python -m research.evaluate` on a tiny model, connect
to no address but loopback and Unix sockets, and never ask for a name (nothing to port 53, no nscd socket).

The environment is a user's: no WANDB_* or HF offline variables (tests/conftest.py sets WANDB_MODE=offline, which
would hide wandb's process-wide telemetry), only W&B's own folders moved under tmp_path."""

import codecs
import ipaddress
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.eval.conftest import model_dir  # noqa: F401  (the tiny model fixture)

ROOT = Path(__file__).resolve().parents[1]
STRACE = shutil.which("strace")
pytestmark = pytest.mark.skipif(STRACE is None, reason="needs strace")

SOCKADDR = re.compile(r"\{sa_family=(AF_INET6?|AF_UNIX),([^{}]*)\}")
PORT = re.compile(r"sin6?_port=htons\((\d+)\)")
ADDR = re.compile(r'inet_addr\("([^"]+)"\)|inet_pton\(AF_INET6, "([^"]+)"')
CALL = re.compile(r'^(\d+) +(connect|sendto|sendmsg|sendmmsg)\((\d+), (.*?)(?: <unfinished \.\.\.>)?$')
PAYLOAD = re.compile(r'"((?:[^"\\]|\\.)*)"')
NSCD_USER_DB = {0, 1, 2, 3, 11, 12, 15}
"""nscd request types that read the user and group databases (GETPWBYNAME, GETPWBYUID, GETGRBYNAME, GETGRBYGID,
GETFDPW, GETFDGR, INITGROUPS): torch looks up the user name so. Any other request (hosts, services) is a lookup."""


def network_attempts(lines: list[str]) -> list[str]:
    """The strace lines (connect/send*) that leave the machine or look a name up: an AF_INET/AF_INET6 address that
    is not loopback, anything to port 53 (DNS), or a request to the name-service cache daemon (nscd) that is not a
    user/group lookup. A connect to nscd's socket that fails asks nothing (the lookup then goes to port 53)."""
    bad, nscd = [], set()
    for line in lines:
        call = CALL.match(line)
        if not call:
            continue
        pid, name, fd, rest = call.groups()
        if (pid, fd) in nscd and name != "connect":  # the request glibc sends right after connecting
            nscd.discard((pid, fd))
            payload = PAYLOAD.search(rest)
            head = codecs.escape_decode(payload.group(1).encode())[0] if payload else b""
            if len(head) < 8 or int.from_bytes(head[4:8], "little") not in NSCD_USER_DB:
                bad.append(line)
            continue
        for family, body in SOCKADDR.findall(rest):
            if family == "AF_UNIX":
                if "nscd" in body and name == "connect" and not re.search(r"= -1 E", rest):
                    nscd.add((pid, fd))
                continue
            port, addr = PORT.search(body), ADDR.search(body)
            ip = ipaddress.ip_address((addr.group(1) or addr.group(2)) if addr else "0.0.0.0")
            ip = getattr(ip, "ipv4_mapped", None) or ip
            if not ip.is_loopback or (port and port.group(1) == "53"):
                bad.append(line)
    return bad


def user_env(tmp_path: Path) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("WANDB_") and k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        env[var] = str(tmp_path / "wandb_home" / var.lower())
    return env | {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


def traced(tmp_path: Path, *cmd: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run cmd under `strace -f -e trace=connect,sendto,sendmsg,sendmmsg`; (the process, the trace's lines)."""
    log = tmp_path / "strace.txt"
    proc = subprocess.run([STRACE, "-f", "-qq", "-e", "trace=connect,sendto,sendmsg,sendmmsg", "-o", str(log), *cmd],
                          cwd=ROOT, env=user_env(tmp_path), capture_output=True, text=True, timeout=600)
    if "PTRACE" in proc.stderr and not log.exists():
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip().splitlines()[0]}")
    return proc, log.read_text().splitlines()


def test_the_check_sees_a_lookup_and_a_remote_connect(tmp_path):
    """The assertion can fail: UDP connects (no packet is sent) to a DNS port and to a documentation address."""
    code = ("import socket\n"
            "for addr in [('127.0.0.1', 53), ('192.0.2.1', 9), ('127.0.0.1', 9)]:\n"
            "    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            "    try:\n        s.connect(addr)\n    except OSError:\n        pass\n    s.close()\n")
    proc, lines = traced(tmp_path, sys.executable, "-c", code)
    assert proc.returncode == 0, proc.stderr
    bad = network_attempts(lines)
    assert len(bad) == 2 and "htons(53)" in bad[0] and "192.0.2.1" in bad[1], lines


def test_the_check_reads_nscd_requests_and_ipv6():
    """strace lines as glibc writes them: a host lookup through nscd (GETAI) is one, a user lookup (GETPWBYUID)
    and a failed connect to nscd are not; IPv6 loopback (also v4-mapped) passes, any other address does not."""
    nscd = '{sa_family=AF_UNIX, sun_path="/var/run/nscd/socket"}, 110'
    v6 = "{sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, \"%s\", " \
         "&sin6_addr), sin6_scope_id=0}, 28"
    lines = [
        f"100 connect(5, {nscd}) = 0",
        r'100 sendto(5, "\2\0\0\0\16\0\0\0\f\0\0\0example.com\0", 24, MSG_NOSIGNAL, NULL, 0) = 24',
        f"101 connect(6, {nscd}) = 0",
        r'101 sendto(6, "\2\0\0\0\1\0\0\0\2\0\0\0000\0", 14, MSG_NOSIGNAL, NULL, 0) = 14',
        r'101 sendto(6, "\0", 1, 0, NULL, 0) = 1',
        f"102 connect(4, {nscd}) = -1 ENOENT (No such file or directory)",
        f"103 connect(7, {v6 % '::1'}) = 0",
        f"103 connect(7, {v6 % '::ffff:127.0.0.1'}) = 0",
        f"103 connect(8, {v6 % '2001:db8::1'} <unfinished ...>",
    ]
    assert network_attempts(lines) == [lines[1], lines[8]]


TRACKING_RUN = """
import sys
from hydra import compose, initialize_config_dir
from research import tracking
from research.cli import CONF_DIR
from research.config import to_object
with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
    raw = compose("evaluate", overrides=["run_root=" + sys.argv[1]])  # the default logger
cfg = to_object(raw)
assert cfg.logger.name == "wandb_offline", cfg.logger
assert tracking.init_run(cfg, raw, job_type="evaluate") is not None
tracking.log({"loss": 2.0}, step=1)
tracking.log({"loss": 1.0}, step=2)
tracking.summary({"final_loss": 1.0})
tracking.finish()
"""


def test_default_logger_run_makes_no_network_attempt(tmp_path):
    root = tmp_path / "run"
    proc, lines = traced(tmp_path, sys.executable, "-c", TRACKING_RUN, str(root))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((root / "wandb").glob("offline-run-*/run-*.wandb")), "no offline W&B run was written"
    assert any("AF_UNIX" in line and "wandb" in line for line in lines), "the trace missed wandb-core's socket"
    bad = network_attempts(lines)
    assert not bad, "network attempts:\n" + "\n".join(bad)


def test_evaluate_with_the_default_logger_makes_no_network_attempt(tmp_path, model_dir):  # noqa: F811
    proc, lines = traced(tmp_path, sys.executable, "-m", "research.evaluate", f"run_root={tmp_path}", "eval=mmlu_quick",
                         f"eval.model_path={model_dir}", "eval.methods=[first_token]", "eval.num_shots=0",
                         "eval.datasets.0.limit=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert list((tmp_path / "eval" / "wandb").glob("offline-run-*")), "no offline W&B run was written"
    bad = network_attempts(lines)
    assert not bad, "network attempts:\n" + "\n".join(bad)
