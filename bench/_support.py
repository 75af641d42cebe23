"""What the HTTP benchmarks share: processes, ports, fresh databases, wrk, /metrics.

Every benchmark runs its own processes on free ports of 127.0.0.1 with its own data
directory (and its own PostgreSQL databases), so it never touches a running `ordtool up`.
Processes are stopped by the pid we started, never by name.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
PG_ADMIN_URL = os.environ.get(
    "ORDTOOL_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# One uvicorn worker with the settings `ordtool serve` uses (uvloop + httptools when
# installed, no access log, no proxy headers, no server header): the ceiling app runs with
# exactly these, so the comparison is service code against bare FastAPI, not server settings.
UVICORN_FLAGS = ("--no-access-log", "--no-proxy-headers", "--no-server-header",
                 "--log-level", "warning")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def shown(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """A command as one could paste it into a shell (secrets in env are elided)."""
    prefix = " ".join(f"{k}={'…' if 'KEY' in k else shlex.quote(v)}"
                      for k, v in (env or {}).items())
    return (prefix + " " if prefix else "") + shlex.join(argv)


@dataclass
class Proc:
    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, grace_s: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""


@dataclass
class Bench:
    """A work directory and the processes started in it; stops them all on exit."""

    workdir: Path
    procs: list[Proc] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)

    def spawn(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> Proc:
        log = self.workdir / f"{name}.log"
        self.commands.append(f"[{name}] {shown(argv, env)}")
        with log.open("ab") as out:
            process = subprocess.Popen(
                list(argv), env=os.environ | dict(env or {}), stdout=out,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO_DIR,
            )
        proc = Proc(name, process, log)
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()


@contextlib.contextmanager
def bench_dir(name: str, keep: bool = False) -> Iterator[Bench]:
    import shutil
    import tempfile

    workdir = Path(tempfile.mkdtemp(prefix=f"ordtool-bench-{name}-"))
    bench = Bench(workdir)
    try:
        yield bench
    finally:
        bench.close()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}", file=sys.stderr)


def wait_http(url: str, proc: Proc, timeout_s: float = 60.0) -> None:
    """Wait until ``url`` answers 200; fail at once (with the log) if the process exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise RuntimeError(f"{proc.name} exited ({proc.process.returncode}):\n{proc.tail()}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} did not answer {url} within {timeout_s:.0f} s:\n{proc.tail()}")


def ordtool(args: Sequence[str], env: Mapping[str, str]) -> str:
    """Run the real CLI (a subprocess, as an operator would) and return its stdout."""
    argv = [sys.executable, "-m", "ordtool", *args]
    result = subprocess.run(
        argv, env=os.environ | dict(env), capture_output=True, text=True, cwd=REPO_DIR,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{shown(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def create_key(env: Mapping[str, str], name: str, *scopes: str) -> str:
    scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
    out = ordtool(["keys", "create", "--name", name, *scope_args, "--json"], env)
    key: str = json.loads(out)["key"]
    return key


@contextlib.contextmanager
def fresh_pg_databases(*labels: str) -> Iterator[dict[str, str]]:
    """Brand-new PostgreSQL databases (one per label), dropped afterwards."""
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    names = {label: f"ordtool_bench_{label}_{uuid.uuid4().hex[:8]}" for label in labels}
    try:
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(text(f'CREATE DATABASE "{name}"'))
        yield {label: f"{base}/{name}" for label, name in names.items()}
    finally:
        with admin.connect() as connection:
            for name in names.values():
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def customer_ids(database_url: str) -> list[int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return [row[0] for row in connection.execute(text("SELECT id FROM customers"))]
    finally:
        engine.dispose()


def count_rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


# Label values may hold braces (route="/customers/{customer_id}"): match quoted strings whole.
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[^"}]|"(?:[^"\\]|\\.)*")*\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def scrape(url: str, key: str | None = None) -> list[tuple[str, dict[str, str], float]]:
    """Samples of a Prometheus text page: (name, labels, value)."""
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=10) as response:
        page = response.read().decode()
    samples = []
    for line in page.splitlines():
        match = _SAMPLE.match(line)
        if match and not line.startswith("#"):
            labels = dict(_LABEL.findall(match.group(2) or ""))
            samples.append((match.group(1), labels, float(match.group(3))))
    return samples


def metric_sum(samples: Sequence[tuple[str, dict[str, str], float]], name: str,
               **labels: str) -> float:
    return sum(value for n, lab, value in samples
               if n == name and all(lab.get(k) == v for k, v in labels.items()))


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    non_2xx: int
    socket_errors: dict[str, int]
    latency_ms: dict[str, float]
    command: str

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def run_wrk(url: str, *, connections: int, duration_s: int, threads: int = 2,
            env: Mapping[str, str] | None = None, timeout_s: int = 10,
            rate: float | None = None) -> WrkResult:
    """wrk with bench/post_orders.lua; the script's done() prints one JSON line. ``rate``:
    requests per second in all, paced by the script (else as fast as answers come)."""
    if rate is not None:
        env = dict(env or {}) | {"BENCH_RATE_PER_THREAD": f"{rate / threads:g}"}
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration_s}s",
            f"--timeout={timeout_s}s", "-s", str(BENCH_DIR / "post_orders.lua"), url]
    result = subprocess.run(
        argv, env=os.environ | dict(env or {}), capture_output=True, text=True, check=False,
        timeout=duration_s + 60,
    )
    line = next((x for x in result.stdout.splitlines() if x.startswith("{\"wrk\"")), None)
    if result.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({result.returncode}): {result.stderr}{result.stdout}")
    data = json.loads(line)["wrk"]
    return WrkResult(
        requests=data["requests"], duration_s=data["duration_us"] / 1e6,
        rps=data["requests"] / (data["duration_us"] / 1e6), non_2xx=data["non_2xx"],
        socket_errors={k: data[k] for k in ("connect", "read", "write", "timeout")},
        latency_ms={k: v / 1000 for k, v in data["latency_us"].items()},
        command=shown(argv, {k: v for k, v in (env or {}).items() if k.startswith("BENCH_")}),
    )


def write_ids(path: Path, ids: Iterable[int]) -> Path:
    path.write_text("\n".join(str(i) for i in ids) + "\n")
    return path


@dataclass
class Stack:
    """A customer service and an order service started for one benchmark."""

    bench: Bench
    env: dict[str, str]
    customers_url: str
    admin_key: str
    service_key: str
    ids_file: Path
    customer_ids: list[int]
    customers: Proc
    orders: Proc | None = None
    orders_url: str = ""

    def start_orders(self, customer_url: str | None = None,
                     extra_env: Mapping[str, str] | None = None) -> Proc:
        """(Re)start the order service: a new process, so an empty in-process cache.
        ``customer_url`` points it elsewhere than the customer service (a delay proxy)."""
        if self.orders is not None:
            self.orders.stop()
        port = free_port()
        env = self.env | {"ORDTOOL_CUSTOMER_SERVICE_URL": customer_url or self.customers_url,
                          "ORDTOOL_CUSTOMER_SERVICE_KEY": self.service_key} | dict(extra_env or {})
        self.orders = self.bench.spawn(
            "orders", [sys.executable, "-m", "ordtool", "serve", "orders", "--port", str(port)],
            env)
        self.orders_url = f"http://{HOST}:{port}"
        wait_http(f"{self.orders_url}/healthz", self.orders)
        return self.orders

    def stop(self) -> None:
        for proc in (self.orders, self.customers):
            if proc is not None:
                proc.stop()


def base_env(bench: Bench, name: str, pg: Mapping[str, str] | None = None) -> dict[str, str]:
    """Settings for a bench stack: its own data dir; production settings (INFO logs as JSON,
    as a deployed service would log); PostgreSQL when ``pg`` names the two databases."""
    env = {"ORDTOOL_DATA_DIR": str(bench.workdir / name), "ORDTOOL_ENVIRONMENT": "production"}
    if pg:
        env["ORDTOOL_ORDERS_DATABASE_URL"] = pg["orders"]
        env["ORDTOOL_CUSTOMERS_DATABASE_URL"] = pg["customers"]
        if "audit" in pg:
            env["ORDTOOL_AUDIT_DATABASE_URL"] = pg["audit"]
    return env


def start_customers(bench: Bench, env: dict[str, str], *, customers: int) -> Stack:
    """Migrate, seed ``customers`` generated customers (plus the shipped seeds), make an
    admin key and the order service's key, start the customer service."""
    ordtool(["db", "upgrade"], env)
    ordtool(["seed", "--idempotent", "--count", str(customers)], env)
    admin_key = create_key(env, "bench-admin", "admin")
    service_key = create_key(env, "bench-orders-service", "customers:read")
    port = free_port()
    proc = bench.spawn(
        "customers", [sys.executable, "-m", "ordtool", "serve", "customers", "--port", str(port)],
        env)
    url = f"http://{HOST}:{port}"
    wait_http(f"{url}/healthz", proc)
    ids = sorted(customer_ids(database_url(env, "customers")))
    return Stack(bench, env, url, admin_key, service_key,
                 write_ids(bench.workdir / "customer_ids.txt", ids), ids, proc)


def start_stack(bench: Bench, env: dict[str, str], *, customers: int) -> Stack:
    """Both services, the order service asking the customer service directly."""
    stack = start_customers(bench, env, customers=customers)
    stack.start_orders()
    return stack


def database_url(env: Mapping[str, str], name: str) -> str:
    """The URL a bench stack's service uses for its database (as ordtool's Settings does)."""
    configured = env.get(f"ORDTOOL_{name.upper()}_DATABASE_URL")
    return configured or f"sqlite:///{Path(env['ORDTOOL_DATA_DIR']) / f'{name}.db'}"


def start_ceiling(bench: Bench, db_file: Path) -> tuple[str, Proc]:
    """bench/ceiling_app.py under the same uvicorn settings as `ordtool serve`."""
    port = free_port()
    proc = bench.spawn(
        "ceiling", [sys.executable, "-m", "uvicorn", "--app-dir", str(BENCH_DIR),
                    "ceiling_app:create_app", "--factory", "--host", HOST, "--port", str(port),
                    *UVICORN_FLAGS],
        {"CEILING_DB": str(db_file)})
    url = f"http://{HOST}:{port}"
    wait_http(f"{url}/healthz", proc)
    return url, proc


def place_each_once(base_url: str, key: str, ids: Sequence[int], concurrency: int = 16,
                    passes: int = 3) -> Counter[int]:
    """One accepted order per customer at a modest concurrency: fills the order service's
    customer cache (every customer looked up once) without flooding the customer service.
    A customer whose order was refused (a 503 while the customer service was slow to
    answer) is tried again in the next pass, up to ``passes``. Returns the statuses of the
    last answer per customer (-1 for a transport error)."""
    import asyncio

    import aiohttp
    from fixed_rate import order_factory

    async def one_pass(session: aiohttp.ClientSession, batch: Sequence[int]) -> dict[int, int]:
        make = order_factory(key, batch)
        queue = iter(range(len(batch)))
        answers: dict[int, int] = {}

        async def worker() -> None:
            for index in queue:
                request = make(index)
                try:
                    async with session.post(request.path, data=request.body,
                                            headers=request.headers) as response:
                        await response.read()
                        answers[batch[index]] = response.status
                except (TimeoutError, aiohttp.ClientError):
                    answers[batch[index]] = -1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return answers

    async def go() -> Counter[int]:
        answers: dict[int, int] = {}
        todo = list(ids)
        async with aiohttp.ClientSession(base_url,
                                         timeout=aiohttp.ClientTimeout(total=30)) as session:
            for attempt in range(passes):
                if attempt:
                    await asyncio.sleep(6)  # let an open circuit breaker close again
                answers |= await one_pass(session, todo)
                todo = [i for i in todo if not 200 <= answers[i] < 300]
                if not todo:
                    break
        return Counter(answers.values())

    return asyncio.run(go())


def machine_note() -> str:
    """Cores and load average: on a shared machine, what else ran matters to every figure."""
    one, five, fifteen = os.getloadavg()
    return (f"{os.cpu_count()} cores, load average {one:.1f} / {five:.1f} / {fifteen:.1f} "
            "(1/5/15 min)")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
