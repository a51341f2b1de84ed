#!/usr/bin/env bash
# Throwaway PostgreSQL 15 cluster + single-node KRaft Apache Kafka broker for test runs.
# No Docker: Debian's PostgreSQL binaries and Kafka jars from Maven Central (see
# docs/infrastructure.md and shared/LOCAL_INFRA.md).
#
#   scripts/services.sh start        install what is missing, start both with FRESH data
#                                    (no-op when both already run); writes $SERVICES_DIR/env
#   scripts/services.sh stop         stop both, by recorded PIDs only (idempotent)
#   scripts/services.sh status       what runs; exit 0 only if both run and answer, else 3
#   scripts/services.sh stop-kafka | start-kafka   stop / restart the broker KEEPING its data
#   scripts/services.sh stop-pg    | start-pg      stop / restart PostgreSQL KEEPING its data
#   scripts/services.sh kafka-version | pg-version
#
# Environment (all optional):
#   SERVICES_DIR           state dir (data, logs, PID files, env)   default: <repo>/var/services
#   STOREOPS_CACHE         download cache, outside the repo         default: $HOME/.cache/storeops
#   PG_PORT                PostgreSQL port on 127.0.0.1             default: 55432
#   KAFKA_PORT             Kafka PLAINTEXT port on 127.0.0.1        default: 59092
#   KAFKA_CONTROLLER_PORT  KRaft controller port on 127.0.0.1      default: 59093
#   SERVICES_TIMEOUT       seconds to wait for each service         default: 90
#   KAFKA_EXTRA_JVM_OPTS   extra broker JVM flags    default: -XX:TieredStopAtLevel=1 (C1 JIT only:
#                          starts in half the time and leaves CPU to the tests; "" for full JIT)
#   KAFKA_CDS              1: class-data-sharing archive of the broker's classes in the jar cache
#                          (made at the first broker's exit, halves later start-ups); 0: off
# The ports are fixed when `start` makes fresh data; start-pg / start-kafka reuse them.
set -euo pipefail
set +m # no job control: the background broker stays a direct child, so $! is its PID

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/.." && pwd)"
SERVICES_DIR="${SERVICES_DIR:-$REPO/var/services}"
STOREOPS_CACHE="${STOREOPS_CACHE:-$HOME/.cache/storeops}"
PG_PORT="${PG_PORT:-55432}"
KAFKA_PORT="${KAFKA_PORT:-59092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-59093}"
TIMEOUT="${SERVICES_TIMEOUT:-90}"
KAFKA_EXTRA_JVM_OPTS="${KAFKA_EXTRA_JVM_OPTS--XX:TieredStopAtLevel=1}"
KAFKA_CDS="${KAFKA_CDS:-1}"

PG_BIN=/usr/lib/postgresql/15/bin
PG_DIR="$SERVICES_DIR/pg"            # root-owned, traversable
PGDATA="$PG_DIR/data"                # postgres-owned, mode 700
PG_LOG="$PG_DIR/server.log"          # postgres-owned file
PG_PIDFILE="$SERVICES_DIR/pg.pid"

KAFKA_POM="$SCRIPT_DIR/kafka/pom.xml"
KAFKA_LOG4J="$SCRIPT_DIR/kafka/log4j2.properties"
KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$KAFKA_POM" | head -n1)"
KAFKA_LIBS="$STOREOPS_CACHE/kafka-libs-$KAFKA_VERSION"
KAFKA_DIR="$SERVICES_DIR/kafka"
KAFKA_DATA="$KAFKA_DIR/data"
KAFKA_LOGS="$KAFKA_DIR/logs"
KAFKA_PROPS="$KAFKA_DIR/server.properties"
KAFKA_STDOUT="$KAFKA_DIR/stdout.log"
KAFKA_PIDFILE="$SERVICES_DIR/kafka.pid"
KAFKA_JVM_OPTS=(-Xms256m -Xmx512m -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$KAFKA_LOG4J" "-Dkafka.logs.dir=$KAFKA_LOGS")
# shellcheck disable=SC2206 # word splitting wanted
KAFKA_JVM_OPTS+=($KAFKA_EXTRA_JVM_OPTS)
KAFKA_CDS_DUMPING="$KAFKA_DIR/cds-dumping" # path of the archive the running broker writes at exit

ENV_FILE="$SERVICES_DIR/env"

log() { printf '[services] %s\n' "$*"; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v s="$1" -v e="$(now)" 'BEGIN { printf "%.1f", e - s }'; }

# ---------------------------------------------------------------------------------------------
# helpers

port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

read_pid() { if [[ -s "$1" ]]; then head -n1 "$1" | tr -dc '0-9'; fi; }

# Alive and not a zombie: a daemon that exited stays a zombie until PID 1 reaps it, which on
# some machines takes ~2 s (this one's init reaps slowly).
proc_alive() {
  local pid="$1" state
  [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
  state="$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)"
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}
# A recorded PID counts only while it is still that process (guards against PID reuse).
pg_pid_alive() {
  local pid="$1"
  proc_alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == postgres* ]]
}
kafka_pid_alive() {
  local pid="$1"
  proc_alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka'
}

pg_recorded_pid() {
  local pid
  pid="$(read_pid "$PG_PIDFILE")"
  [[ -n "$pid" ]] || pid="$(read_pid "$PGDATA/postmaster.pid" 2>/dev/null)"
  echo "$pid"
}

# Port of an existing cluster / broker, from its own config (fixed when it was made).
pg_conf_port() { sed -n "s/^port *= *\([0-9]*\).*/\1/p" "$PGDATA/postgresql.conf" 2>/dev/null | tail -n1; }
kafka_conf_port() { sed -n "s/^listeners=PLAINTEXT:\/\/127.0.0.1:\([0-9]*\),.*/\1/p" "$KAFKA_PROPS" 2>/dev/null; }

psql_q() { "$PG_BIN/psql" -X -h 127.0.0.1 -p "$1" -U postgres -d postgres -Atqc "$2"; }

pg_running() {
  local port; port="$(pg_conf_port)"
  [[ -n "$port" ]] && pg_pid_alive "$(pg_recorded_pid)" && psql_q "$port" 'select 1' >/dev/null 2>&1
}
kafka_running() {
  local port; port="$(kafka_conf_port)"
  [[ -n "$port" ]] && kafka_pid_alive "$(read_pid "$KAFKA_PIDFILE")" && kafka_ready "$port"
}

# Is the broker really serving? Speaks the Kafka protocol (stdlib only): ApiVersions, then a
# Metadata request; ready when the broker lists itself (i.e. it is registered and unfenced)
# and a controller is known. The port alone opens before that.
kafka_ready() {
  python3 - "$1" <<'PY' 2>/dev/null
import socket, struct, sys

port = int(sys.argv[1])

def call(sock, api_key, version, corr, body):
    client = b"storeops-probe"
    hdr = struct.pack(">hhih", api_key, version, corr, len(client)) + client
    msg = hdr + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    def read(n):
        buf = b""
        while len(buf) < n:
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf
    size = struct.unpack(">i", read(4))[0]
    data = read(size)
    if struct.unpack(">i", data[:4])[0] != corr:
        raise ValueError("correlation id")
    return data[4:]

with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
    # ApiVersions v0 (every broker answers it)
    r = call(s, 18, 0, 1, b"")
    err, n = struct.unpack(">hi", r[:6])
    if err:
        sys.exit(1)
    apis = {}
    for i in range(n):
        k, lo, hi = struct.unpack(">hhh", r[6 + 6 * i: 12 + 6 * i])
        apis[k] = (lo, hi)
    lo, hi = apis[3]                      # Metadata
    v = min(hi, 8)                        # v4..v8: non-flexible encoding
    if v < max(lo, 4):
        sys.exit(1)
    # topics = [] (none), allow_auto_topic_creation = false; v8 adds two include_* booleans
    body = struct.pack(">i", 0) + b"\x00" + (b"\x00\x00" if v >= 8 else b"")
    r = call(s, 3, v, 2, body)
    off = 4                               # throttle_time_ms
    (nb,) = struct.unpack(">i", r[off:off + 4]); off += 4
    brokers = []
    for _ in range(nb):
        node_id, hl = struct.unpack(">ih", r[off:off + 6]); off += 6 + hl
        off += 4                          # port
        (rl,) = struct.unpack(">h", r[off:off + 2]); off += 2 + max(rl, 0)
        brokers.append(node_id)
    (cl,) = struct.unpack(">h", r[off:off + 2]); off += 2 + max(cl, 0)
    (controller,) = struct.unpack(">i", r[off:off + 4])
    sys.exit(0 if brokers and controller >= 0 else 1)
PY
}

# Every parent of the PostgreSQL data dir must be traversable by the postgres user
# (a root-only 0700 parent, e.g. /root or a mktemp -d dir, makes initdb fail).
ensure_traversable() {
  local d="$1" dirs=()
  while [[ "$d" != "/" && -n "$d" ]]; do dirs=("$d" "${dirs[@]}"); d="$(dirname "$d")"; done
  for d in "${dirs[@]}"; do # from the top down
    if ! runuser -u postgres -- test -x "$d" 2>/dev/null; then
      log "note: chmod o+x $d (postgres must traverse it to reach its data dir)"
      chmod o+x "$d"
    fi
  done
}

APT_UPDATED=0
apt_install() {
  if [[ $APT_UPDATED == 0 ]]; then
    log "apt-get update"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

ensure_tools() {
  [[ $(id -u) == 0 ]] || die "run as root (initdb runs through runuser -u postgres)"
  command -v python3 >/dev/null || apt_install python3
  command -v java >/dev/null || apt_install openjdk-17-jre-headless
  if [[ ! -x "$PG_BIN/initdb" ]]; then
    local t0; t0=$(now)
    # Keep Debian from creating and starting its own "15 main" cluster on port 5432.
    apt_install postgresql-common
    if [[ -f /etc/postgresql-common/createcluster.conf ]]; then
      sed -i 's/^#\? *create_main_cluster *=.*/create_main_cluster = false/' /etc/postgresql-common/createcluster.conf
    fi
    apt_install postgresql-15
    [[ -x "$PG_BIN/initdb" ]] || die "postgresql-15 installed but $PG_BIN/initdb is missing"
    log "installed PostgreSQL 15 in $(elapsed "$t0") s"
  fi
}

ensure_kafka_libs() {
  [[ -n "$KAFKA_VERSION" ]] || die "no <kafka.version> in $KAFKA_POM"
  [[ -f "$KAFKA_LIBS/.complete" ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  local t0 tmp; t0=$(now)
  mkdir -p "$STOREOPS_CACHE"
  tmp="$KAFKA_LIBS.partial.$$"
  log "downloading Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS"
  local mvn_cmd=(mvn -B -q -U -Dstyle.color=never -f "$KAFKA_POM"
    org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies
    -DincludeScope=runtime "-DoutputDirectory=$tmp")
  local mvn_log="$STOREOPS_CACHE/kafka-libs-$KAFKA_VERSION.mvn.log"
  rm -rf "$tmp"
  if ! (cd "$STOREOPS_CACHE" && "${mvn_cmd[@]}") >"$mvn_log" 2>&1; then
    log "Maven download failed; retrying once (-U ignores cached failures): $(tail -n 3 "$mvn_log" | tr '\n' ' ')"
    rm -rf "$tmp"
    sleep 2
    if ! (cd "$STOREOPS_CACHE" && "${mvn_cmd[@]}") >"$mvn_log" 2>&1; then
      rm -rf "$tmp"
      fail_with_log "could not download the Kafka jars with Maven" "$mvn_log"
    fi
  fi
  ls "$tmp"/kafka_2.13-"$KAFKA_VERSION".jar >/dev/null 2>&1 || die "kafka_2.13-$KAFKA_VERSION.jar missing after download"
  touch "$tmp/.complete"
  rm -rf "$KAFKA_LIBS"
  mv "$tmp" "$KAFKA_LIBS"
  log "Kafka jars downloaded in $(elapsed "$t0") s ($(du -sh "$KAFKA_LIBS" | cut -f1))"
}

fail_with_log() {
  local what="$1"; shift
  printf '[services] ERROR: %s\n' "$what" >&2
  local f
  for f in "$@"; do
    if [[ -s "$f" ]]; then
      printf '[services] ---- last 50 lines of %s ----\n' "$f" >&2
      tail -n 50 "$f" >&2
    fi
  done
  exit 1
}

write_env() {
  local pg_port kafka_port tmp
  pg_port="$(pg_conf_port)"; kafka_port="$(kafka_conf_port)"
  tmp="$ENV_FILE.tmp.$$"
  {
    echo "export TEST_PG_DSN=postgresql://postgres@127.0.0.1:${pg_port:-$PG_PORT}/postgres"
    echo "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:${kafka_port:-$KAFKA_PORT}"
  } >"$tmp"
  mv "$tmp" "$ENV_FILE"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL

pg_launch() { # start the existing cluster in $PGDATA and wait until it answers
  local port t0 pid; port="$(pg_conf_port)"
  port_open "$port" && die "port $port is already in use by another process (set PG_PORT)"
  t0=$(now)
  # 9>&-: the server must not inherit the lock's file descriptor (it would hold the lock).
  if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -l "$PG_LOG" -w -t "$TIMEOUT" start >/dev/null 9>&-; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fail_with_log "PostgreSQL did not start within ${TIMEOUT}s" "$PG_LOG"
  fi
  pid="$(read_pid "$PGDATA/postmaster.pid")"
  [[ -n "$pid" ]] || fail_with_log "no postmaster.pid after start" "$PG_LOG"
  echo "$pid" >"$PG_PIDFILE"
  local deadline=$((SECONDS + TIMEOUT))
  until psql_q "$port" 'select 1' >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail_with_log "PostgreSQL on port $port does not accept connections after ${TIMEOUT}s" "$PG_LOG"
    sleep 0.1
  done
  PG_START_SECS="$(elapsed "$t0")"
}

pg_fresh() {
  local t0 sock_dir; t0=$(now)
  pg_stop quiet
  port_open "$PG_PORT" && die "port $PG_PORT is already in use by another process (set PG_PORT)"
  rm -rf "$PG_DIR"
  install -d -m 755 "$SERVICES_DIR" "$PG_DIR"
  ensure_traversable "$PG_DIR"
  install -d -o postgres -g postgres -m 700 "$PGDATA"
  install -o postgres -g postgres -m 640 /dev/null "$PG_LOG"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C.UTF-8 --no-sync >"$PG_DIR/initdb.log" 2>&1 ||
    fail_with_log "initdb failed" "$PG_DIR/initdb.log"
  # Unix socket inside the data dir (away from any system cluster's), unless the path is too
  # long for a socket (108 bytes): then TCP only.
  sock_dir="$PGDATA"
  ((${#PGDATA} + 20 < 100)) || sock_dir=""
  cat >>"$PGDATA/postgresql.conf" <<EOF

# ---- storeops test cluster (scripts/services.sh) ----
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$sock_dir'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_min_messages = warning
EOF
  local init_secs; init_secs="$(elapsed "$t0")"
  pg_launch
  log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') ready on 127.0.0.1:$PG_PORT (pid $(cat "$PG_PIDFILE")): initdb ${init_secs}s + start ${PG_START_SECS}s = $(elapsed "$t0")s"
}

pg_stop() { # pg_stop [quiet]
  local pid; pid="$(pg_recorded_pid)"
  if pg_pid_alive "$pid"; then
    local t0; t0=$(now)
    if ! runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m fast -w -t 60 stop >/dev/null 2>&1; then
      log "pg_ctl -m fast stop failed; trying -m immediate"
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
    fi
    for _ in $(seq 1 100); do pg_pid_alive "$pid" || break; sleep 0.1; done
    if pg_pid_alive "$pid"; then
      log "PostgreSQL pid $pid still alive; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    log "PostgreSQL stopped (pid $pid) in $(elapsed "$t0") s"
  elif [[ "${1:-}" != quiet ]]; then
    log "PostgreSQL not running"
  fi
  rm -f "$PG_PIDFILE"
}

pg_restart_keep() {
  [[ -f "$PGDATA/PG_VERSION" ]] || die "no PostgreSQL data in $PGDATA: run '$0 start' first"
  if pg_running; then log "PostgreSQL already running (pid $(pg_recorded_pid))"; return 0; fi
  pg_stop quiet
  pg_launch
  log "PostgreSQL restarted with its data on 127.0.0.1:$(pg_conf_port) (pid $(cat "$PG_PIDFILE")) in ${PG_START_SECS}s"
}

# ---------------------------------------------------------------------------------------------
# Kafka

# Class-data-sharing (AppCDS) archive, one per JVM build, next to the jars it was made from.
# JDK 17 can only write a dynamic archive when a JVM exits: the first broker without one writes
# it on its (clean) stop, and later starts and the format tool map it. The JVM checks the
# archive against its own build and the class path and ignores one that does not fit.
kafka_cds_archive() {
  local j so; j="$(readlink -f "$(command -v java)")"; so="${j%/bin/java}/lib/server/libjvm.so"
  echo "$KAFKA_LIBS/broker-$( (echo "$j"; stat -c %Y "$so" 2>/dev/null || true) | md5sum | cut -c1-10).jsa"
}

# Sets CDS_OPTS for a JVM: use the archive if there is one; if not and $1 == dump, write one.
kafka_cds_opts() {
  CDS_OPTS=()
  [[ "$KAFKA_CDS" == 1 ]] || return 0
  local archive; archive="$(kafka_cds_archive)"
  if [[ -s "$archive" ]]; then
    CDS_OPTS=("-XX:SharedArchiveFile=$archive")
  elif [[ "${1:-}" == dump ]]; then
    find "$KAFKA_LIBS" -maxdepth 1 -name '*.jsa.dumping-*' -mmin +60 -delete 2>/dev/null || true
    CDS_OPTS=("-XX:ArchiveClassesAtExit=$archive.dumping-$$" -Xlog:cds=error -Xlog:cds+dynamic=error)
    echo "$archive.dumping-$$" >"$KAFKA_CDS_DUMPING"
  fi
}

# After the broker exited: keep the archive it wrote, if it wrote one whole.
kafka_cds_collect() {
  [[ -f "$KAFKA_CDS_DUMPING" ]] || return 0
  local f; f="$(cat "$KAFKA_CDS_DUMPING")"; rm -f "$KAFKA_CDS_DUMPING"
  if [[ "${1:-}" == clean && -s "$f" ]]; then
    mv -f "$f" "${f%.dumping-*}"
    log "saved the broker's class-data-sharing archive ($(du -sh "${f%.dumping-*}" | cut -f1)); later starts are faster"
  else
    rm -f "$f"
  fi
}

kafka_launch() { # start the broker on the formatted $KAFKA_DATA and wait until it is ready
  local port cport t0 pid; port="$(kafka_conf_port)"
  cport="$(sed -n 's/^controller.quorum.bootstrap.servers=127.0.0.1:\([0-9]*\)/\1/p' "$KAFKA_PROPS")"
  port_open "$port" && die "port $port is already in use by another process (set KAFKA_PORT)"
  port_open "$cport" && die "port $cport is already in use by another process (set KAFKA_CONTROLLER_PORT)"
  t0=$(now)
  mkdir -p "$KAFKA_LOGS"
  local CDS_OPTS; kafka_cds_opts dump
  # Own session (setsid without a fork, as we are no process-group leader): the broker does
  # not get the caller's terminal signals; it is stopped through the PID recorded here.
  # 9>&-: the broker must not inherit the lock's file descriptor (it would hold the lock).
  setsid java "${KAFKA_JVM_OPTS[@]}" "${CDS_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >>"$KAFKA_STDOUT" 2>&1 9>&- &
  pid=$!
  disown "$pid" 2>/dev/null || true # no "Killed" job report from bash; we track it by PID
  echo "$pid" >"$KAFKA_PIDFILE"
  local deadline=$((SECONDS + TIMEOUT))
  until port_open "$port" && kafka_ready "$port"; do
    if ! proc_alive "$pid"; then
      kafka_cds_collect killed
      fail_with_log "Kafka broker (pid $pid) exited during start-up" "$KAFKA_LOGS/server.log" "$KAFKA_STDOUT"
    fi
    if ((SECONDS >= deadline)); then
      kill -KILL "$pid" 2>/dev/null || true
      rm -f "$KAFKA_PIDFILE"
      kafka_cds_collect killed
      fail_with_log "Kafka broker not ready on 127.0.0.1:$port after ${TIMEOUT}s (killed pid $pid)" "$KAFKA_LOGS/server.log" "$KAFKA_STDOUT"
    fi
    sleep 0.2
  done
  kafka_pid_alive "$pid" || fail_with_log "recorded PID $pid is not the broker" "$KAFKA_STDOUT"
  KAFKA_START_SECS="$(elapsed "$t0")"
}

kafka_fresh() {
  local t0 cid; t0=$(now)
  kafka_stop quiet
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is already in use by another process (set KAFKA_PORT)"
  port_open "$KAFKA_CONTROLLER_PORT" && die "port $KAFKA_CONTROLLER_PORT is already in use by another process (set KAFKA_CONTROLLER_PORT)"
  rm -rf "$KAFKA_DIR"
  mkdir -p "$KAFKA_DATA" "$KAFKA_LOGS"
  cat >"$KAFKA_PROPS" <<EOF
# single-node KRaft broker for tests (scripts/services.sh); remade by every full 'start'
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$KAFKA_DATA
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.partitions=3
group.min.session.timeout.ms=1000
log.retention.hours=1
EOF
  cid="$(python3 -c 'import uuid,base64;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode())')"
  # The format tool is short-lived: C1 JIT only starts it faster.
  local CDS_OPTS; kafka_cds_opts
  java "${KAFKA_JVM_OPTS[@]}" -XX:TieredStopAtLevel=1 "${CDS_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool \
    format --standalone -t "$cid" -c "$KAFKA_PROPS" >"$KAFKA_DIR/format.log" 2>&1 ||
    fail_with_log "kafka-storage format failed" "$KAFKA_DIR/format.log"
  local fmt_secs; fmt_secs="$(elapsed "$t0")"
  kafka_launch
  log "Kafka $KAFKA_VERSION ready on 127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_PIDFILE")): format ${fmt_secs}s + start ${KAFKA_START_SECS}s = $(elapsed "$t0")s"
}

kafka_stop() { # kafka_stop [quiet]
  local pid; pid="$(read_pid "$KAFKA_PIDFILE")"
  if kafka_pid_alive "$pid"; then
    local t0; t0=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kafka_pid_alive "$pid" || break; sleep 0.1; done
    if kafka_pid_alive "$pid"; then
      log "Kafka pid $pid still alive after 30 s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do proc_alive "$pid" || break; sleep 0.1; done
      kafka_cds_collect killed
    else
      kafka_cds_collect clean
    fi
    log "Kafka stopped (pid $pid) in $(elapsed "$t0") s"
  else
    kafka_cds_collect crashed
    [[ "${1:-}" == quiet ]] || log "Kafka not running"
  fi
  rm -f "$KAFKA_PIDFILE"
}

kafka_restart_keep() {
  [[ -f "$KAFKA_DATA/meta.properties" && -f "$KAFKA_PROPS" ]] || die "no Kafka data in $KAFKA_DATA: run '$0 start' first"
  if kafka_running; then log "Kafka already running (pid $(read_pid "$KAFKA_PIDFILE"))"; return 0; fi
  kafka_stop quiet
  ensure_kafka_libs
  kafka_launch
  log "Kafka restarted with its data on 127.0.0.1:$(kafka_conf_port) (pid $(cat "$KAFKA_PIDFILE")) in ${KAFKA_START_SECS}s"
}

# ---------------------------------------------------------------------------------------------
# commands

lock() { # serialise concurrent invocations on one state dir
  mkdir -p "$SERVICES_DIR"
  exec 9>"$SERVICES_DIR/.lock"
  flock -w 300 9 || die "another services.sh holds $SERVICES_DIR/.lock"
}

cmd_start() {
  lock
  local pg_up=0 kafka_up=0
  pg_running && pg_up=1
  kafka_running && kafka_up=1
  if ((pg_up && kafka_up)); then
    write_env
    log "already running: PostgreSQL pid $(pg_recorded_pid), Kafka pid $(read_pid "$KAFKA_PIDFILE"); nothing to do"
    return 0
  fi
  # Fail before any work if a port we need is taken by something that is not ours.
  # (Ours would be stopped first by pg_fresh / kafka_fresh.)
  local p
  if ((!pg_up)) && ! pg_pid_alive "$(pg_recorded_pid)"; then
    ! port_open "$PG_PORT" || die "port $PG_PORT is already in use by another process (set PG_PORT)"
  fi
  if ((!kafka_up)) && ! kafka_pid_alive "$(read_pid "$KAFKA_PIDFILE")"; then
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
      ! port_open "$p" || die "port $p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    done
  fi
  ensure_tools
  ((kafka_up)) || ensure_kafka_libs
  local t0; t0=$(now)
  if ((!pg_up && !kafka_up)); then
    # Both from scratch: PostgreSQL comes up while the JVM starts. Each one's output is kept
    # apart and shown after.
    # (Both run as background jobs: errexit stays in force inside them, unlike `(f) || ...`.)
    local pg_out="$SERVICES_DIR/.pg-start.out" pg_job kafka_job rc=0
    (pg_fresh) >"$pg_out" 2>&1 &
    pg_job=$!
    (kafka_fresh) &
    kafka_job=$!
    wait "$kafka_job" || rc=$?
    wait "$pg_job" || rc=$?
    cat "$pg_out"; rm -f "$pg_out"
    if ((rc != 0)); then
      cmd_stop_quiet
      die "start failed; stopped what had started"
    fi
  elif ((!pg_up)); then
    pg_fresh
  else
    kafka_fresh
  fi
  write_env
  log "all services ready in $(elapsed "$t0") s; env: $ENV_FILE"
  cat "$ENV_FILE"
}

cmd_stop_quiet() { kafka_stop quiet; pg_stop quiet; }

cmd_stop() {
  lock
  kafka_stop
  pg_stop
}

cmd_status() {
  local pid up=0
  pid="$(pg_recorded_pid)"
  if pg_pid_alive "$pid"; then
    if pg_running; then
      up=$((up + 1))
      log "PostgreSQL: running, pid $pid, 127.0.0.1:$(pg_conf_port), data $PGDATA"
    else
      log "PostgreSQL: pid $pid alive but not answering on 127.0.0.1:$(pg_conf_port)"
    fi
  else
    log "PostgreSQL: not running${pid:+ (stale pid $pid)}"
  fi
  pid="$(read_pid "$KAFKA_PIDFILE")"
  if kafka_pid_alive "$pid"; then
    if kafka_ready "$(kafka_conf_port)"; then
      up=$((up + 1))
      log "Kafka: running, pid $pid, 127.0.0.1:$(kafka_conf_port), data $KAFKA_DATA"
    else
      log "Kafka: pid $pid alive but not ready on 127.0.0.1:$(kafka_conf_port)"
    fi
  else
    log "Kafka: not running${pid:+ (stale pid $pid)}"
  fi
  if [[ -f "$ENV_FILE" ]]; then log "env file $ENV_FILE:"; cat "$ENV_FILE"; fi
  ((up == 2)) || return 3
}

cmd_kafka_version() {
  if [[ -f "$KAFKA_LIBS/.complete" ]]; then
    # What the jars say (kafka/kafka-version.properties inside kafka-clients), no JVM needed.
    python3 - "$KAFKA_LIBS" <<'PY'
import glob, sys, zipfile
jar = glob.glob(sys.argv[1] + "/kafka-clients-*.jar")[0]
props = dict(l.split("=", 1) for l in zipfile.ZipFile(jar).read("kafka/kafka-version.properties").decode().split() if "=" in l)
print(f"Kafka {props.get('version')} (commit {props.get('commitId')}; jars: {sys.argv[1]})")
PY
  else
    echo "Kafka $KAFKA_VERSION (from $KAFKA_POM; jars not downloaded yet)"
  fi
}

cmd_pg_version() {
  if [[ -x "$PG_BIN/postgres" ]]; then "$PG_BIN/postgres" --version; else echo "PostgreSQL 15 not installed ($PG_BIN)"; fi
}

usage() { # the header comment of this file
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  stop-kafka) lock; kafka_stop ;;
  start-kafka) lock; ensure_tools; kafka_restart_keep; write_env ;;
  stop-pg) lock; pg_stop ;;
  start-pg) lock; ensure_tools; pg_restart_keep; write_env ;;
  kafka-version) cmd_kafka_version ;;
  pg-version) cmd_pg_version ;;
  -h | --help | help) usage ;;
  *) usage >&2; exit 2 ;;
esac
