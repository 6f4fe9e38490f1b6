#!/usr/bin/env bash
# bench-compare.sh runs one matrix of `skein bench` scenarios against Skein, Mosquitto
# and mochi-mqtt v2, one broker at a time (each started fresh for every scenario and
# alone on the machine), and prints a table: scenario, skein, mosquitto, mochi, and
# skein divided by the best of the others.
#
#   scripts/bench-compare.sh [--quick] [--duration 10s] [--conns 10000]
#                            [--brokers "skein mosquitto mochi"] [--out DIR]
#                            [--mosquitto-nodelay] [--conns-only] [--skein-args "..."]
#
# --quick runs 3 s per scenario instead of 10 s. --out keeps every run's JSON summary
# and stderr in DIR. --conns-only runs only the connection rows (conn/s and RSS per
# idle connection). --skein-args adds arguments to skein serve (for example
# "--event-loop=false"). --mosquitto-nodelay adds set_tcp_nodelay true to Mosquitto's
# configuration: it is off by default, so Nagle's algorithm holds back Mosquitto's
# small writes, while the Go brokers get TCP_NODELAY from the Go runtime.
#
# Mosquitto is Debian's /usr/sbin/mosquitto; mochi-mqtt is built from the Go module
# proxy in a temporary directory, never inside this repository. Every process the
# script starts is stopped on exit.
set -euo pipefail

DURATION=10s
CONNS=10000
BROKERS="skein mosquitto mochi"
OUT=""
MOCHI_VERSION=v2.7.9
MOSQUITTO_NODELAY=false
CONNS_ONLY=false
SKEIN_ARGS=""
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) DURATION=3s ;;
	--duration) DURATION="$2"; shift ;;
	--conns) CONNS="$2"; shift ;;
	--brokers) BROKERS="$2"; shift ;;
	--out) OUT="$2"; shift ;;
	--mosquitto-nodelay) MOSQUITTO_NODELAY=true ;;
	--conns-only) CONNS_ONLY=true ;;
	--skein-args) SKEIN_ARGS="$2"; shift ;;
	-h | --help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
	*) echo "bench-compare: unknown option $1" >&2; exit 2 ;;
	esac
	shift
done

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/skein-bench-compare.XXXXXX)
RES="$WORK/results"
mkdir -p "$RES"
BROKER_PID=""
BENCH_PID=""

cleanup() {
	for pid in $BENCH_PID $BROKER_PID; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	if [ -n "$OUT" ]; then
		mkdir -p "$OUT" && cp -r "$RES"/. "$OUT"/
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need() { command -v "$1" >/dev/null || { echo "bench-compare: $1 is required" >&2; exit 1; }; }
need go
need jq
need python3
case " $BROKERS " in *" mosquitto "*) need mosquitto ;; esac

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_port() {
	for _ in $(seq 200); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
		sleep 0.05
	done
	return 1
}

rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
fd_count() { ls "/proc/$1/fd" | wc -l; }
seconds() { # 10s, 1500ms, 2m -> seconds
	case "$1" in
	*ms) echo "${1%ms}" | awk '{print $1/1000}' ;;
	*m) echo "${1%m}" | awk '{print $1*60}' ;;
	*s) echo "${1%s}" ;;
	*) echo "$1" ;;
	esac
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "== building skein" >&2
(cd "$ROOT" && go build -o "$WORK/skein" ./cmd/skein)
SKEIN="$WORK/skein"

if [[ " $BROKERS " == *" mochi "* ]]; then
	echo "== building mochi-mqtt $MOCHI_VERSION in $WORK/mochi" >&2
	mkdir -p "$WORK/mochi"
	cat >"$WORK/mochi/main.go" <<'EOF'
// A mochi-mqtt broker with an allow-all hook on one TCP listener, for bench-compare.sh.
package main

import (
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "listen address")
	flag.Parse()
	s := mqtt.New(&mqtt.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err := s.AddHook(new(auth.AllowHook), nil); err != nil {
		log.Fatal(err)
	}
	if err := s.AddListener(listeners.NewTCP(listeners.Config{ID: "tcp", Address: *addr})); err != nil {
		log.Fatal(err)
	}
	go func() {
		if err := s.Serve(); err != nil {
			log.Fatal(err)
		}
	}()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = s.Close()
}
EOF
	(
		cd "$WORK/mochi"
		export GOFLAGS=-mod=mod
		go mod init mochibench >/dev/null 2>&1
		go get "github.com/mochi-mqtt/server/v2@$MOCHI_VERSION" >/dev/null 2>&1
		go build -o mochi .
	)
fi

# start_broker NAME PORT: starts the broker in the background, sets BROKER_PID.
start_broker() {
	local name=$1 port=$2 dir="$WORK/run-$1"
	rm -rf "$dir" && mkdir -p "$dir"
	case "$name" in
	skein)
		# shellcheck disable=SC2086 # SKEIN_ARGS are words
		"$SKEIN" serve --data-dir "$dir/data" --mqtt-addr "127.0.0.1:$port" --ws-addr "" --http-addr "" \
			--sys-interval 0 --log-level warn $SKEIN_ARGS >"$dir/log" 2>&1 &
		;;
	mosquitto)
		cat >"$dir/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
max_queued_messages 100000
max_inflight_messages 0
persistence false
set_tcp_nodelay $MOSQUITTO_NODELAY
log_dest stderr
log_type error
log_type warning
EOF
		mosquitto -c "$dir/mosquitto.conf" >"$dir/log" 2>&1 &
		;;
	mochi)
		"$WORK/mochi/mochi" -addr "127.0.0.1:$port" >"$dir/log" 2>&1 &
		;;
	esac
	BROKER_PID=$!
	if ! wait_port "$port"; then
		echo "bench-compare: $name did not start:" >&2
		cat "$dir/log" >&2
		exit 1
	fi
}

# stop_broker LOGNAME: stops the broker and keeps its log (with a line saying if it
# had exited by itself) as $RES/LOGNAME.broker.log.
stop_broker() {
	[ -n "$BROKER_PID" ] || return 0
	local log="$RES/$1.broker.log" status
	if ! kill -0 "$BROKER_PID" 2>/dev/null; then
		status=0
		wait "$BROKER_PID" 2>/dev/null || status=$?
		echo "bench-compare: the broker had exited by itself (status $status)" >>"$WORK/run-${1%%-*}/log"
		echo "bench-compare: $1: the broker had exited by itself (status $status)" >&2
	fi
	kill "$BROKER_PID" 2>/dev/null || true
	for _ in $(seq 100); do
		kill -0 "$BROKER_PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$BROKER_PID" 2>/dev/null || true
	wait "$BROKER_PID" 2>/dev/null || true
	BROKER_PID=""
	cp "$WORK/run-${1%%-*}/log" "$log" 2>/dev/null || true
}

# bench OUTFILE ARGS...: one skein bench run with --json; fails softly.
bench() {
	local out=$1
	shift
	local limit
	limit=$(awk -v d="$(seconds "$DURATION")" 'BEGIN {print int(d + 120)}')
	if ! timeout "$limit" "$SKEIN" bench "$@" --json --quiet >"$out" 2>"${out%.json}.err"; then
		echo '{"failed": true}' >"$out"
	fi
}

# Scenarios: id|label|metric (jq path)|better (high or low)|skein bench arguments.
SCENARIOS=(
	"fanin-q0|fan-in 10->1, QoS 0, 16 B (recv msg/s)|.recv_rate|high|pubsub fan-in -c 10 -q 0 -s 16"
	"fanout-q0|fan-out 1->10, QoS 0, 16 B (recv msg/s)|.recv_rate|high|pubsub fan-out -c 10 -q 0 -s 16"
	"pairs-q0|pairs 10->10, QoS 0, 16 B (recv msg/s)|.recv_rate|high|pubsub pairs -c 10 -q 0 -s 16"
	"pairs-q0-1k|pairs 10->10, QoS 0, 1 KiB (recv msg/s)|.recv_rate|high|pubsub pairs -c 10 -q 0 -s 1024"
	"pairs-q1|pairs 10->10, QoS 1, 16 B (recv msg/s)|.recv_rate|high|pubsub pairs -c 10 -q 1 -s 16"
	"fanin-q1|fan-in 10->1, QoS 1, 16 B (recv msg/s)|.recv_rate|high|pubsub fan-in -c 10 -q 1 -s 16"
	"lat-q0|p99 latency at 10k msg/s, QoS 0, 256 B (ms)|.latency.p99_ms|low|pubsub pairs -c 10 -i 1 -q 0 -s 256"
	"lat-q1|p99 latency at 10k msg/s, QoS 1, 256 B (ms)|.latency.p99_ms|low|pubsub pairs -c 10 -i 1 -q 1 -s 256"
)
CONN_LABEL="connections accepted ($CONNS, conn/s)"
RSS_LABEL="RSS per idle connection at $CONNS (KiB)"

run_broker() {
	local b=$1 port
	$CONNS_ONLY && SCENARIOS=()
	for sc in ${SCENARIOS[@]+"${SCENARIOS[@]}"}; do
		IFS='|' read -r id label _ _ args <<<"$sc"
		port=$(free_port)
		start_broker "$b" "$port"
		echo "== $b: $label" >&2
		# shellcheck disable=SC2086 # args are words
		bench "$RES/$b-$id.json" $args -p "$port" --duration "$DURATION"
		stop_broker "$b-$id"
	done

	# Connections: a fresh broker, its RSS at rest, then $CONNS connections held
	# open; RSS is read once all are accepted and the broker has settled.
	port=$(free_port)
	start_broker "$b" "$port"
	echo "== $b: $CONN_LABEL, $RSS_LABEL" >&2
	sleep 1
	local rss0 fd0 rss1=0
	rss0=$(rss_kib "$BROKER_PID")
	fd0=$(fd_count "$BROKER_PID")
	timeout 300 "$SKEIN" bench conn -c "$CONNS" -p "$port" --duration 8s --json --quiet \
		>"$RES/$b-conn.json" 2>"$RES/$b-conn.err" &
	BENCH_PID=$!
	for _ in $(seq 600); do
		if [ "$(fd_count "$BROKER_PID")" -ge $((fd0 + CONNS)) ]; then
			sleep 2
			rss1=$(rss_kib "$BROKER_PID")
			break
		fi
		kill -0 "$BENCH_PID" 2>/dev/null || break
		sleep 0.1
	done
	wait "$BENCH_PID" || echo '{"failed": true}' >"$RES/$b-conn.json"
	BENCH_PID=""
	stop_broker "$b-conn"
	if [ "$rss1" -gt 0 ]; then
		awk -v a="$rss0" -v b="$rss1" -v n="$CONNS" 'BEGIN {printf "{\"rss0_kib\": %d, \"rss1_kib\": %d, \"per_conn_kib\": %.2f}\n", a, b, (b-a)/n}' >"$RES/$b-rss.json"
	else
		echo '{"failed": true}' >"$RES/$b-rss.json"
	fi
}

for b in $BROKERS; do
	run_broker "$b"
done

# value FILE JQPATH: the number, or "fail"; a pubsub run that lost messages or had
# errors is marked with "!" (see its JSON under --out).
value() {
	local f=$1 path=$2
	if [ ! -s "$f" ] || [ "$(jq -r '.failed // false' "$f")" = true ]; then
		echo fail
		return
	fi
	local v mark
	v=$(jq -r "$path // empty" "$f")
	[ -n "$v" ] || { echo fail; return; }
	mark=$(jq -r 'if ((.lost // 0) > 0 or (.errors // 0) > 0 or (.conn_failed // 0) > 0) then "!" else "" end' "$f")
	echo "$v$mark"
}

fmt_num() { # numbers above 100 without decimals, small ones with two
	case "$1" in
	fail | -) echo "$1" ;;
	*) echo "$1" | awk '{ m=""; v=$1; if (v ~ /!$/) { m="!"; sub(/!$/, "", v) } if (v+0 >= 100) printf "%.0f%s", v, m; else printf "%.2f%s", v, m }' ;;
	esac
}

ratio() { # better skein others...
	local better=$1 skein=${2%!}
	shift 2
	python3 - "$better" "$skein" "$@" <<'EOF'
import sys
better, skein, others = sys.argv[1], sys.argv[2], [o.rstrip("!") for o in sys.argv[3:]]
try:
    s = float(skein)
    vals = [float(o) for o in others if o not in ("fail", "-", "")]
    best = max(vals) if better == "high" else min(vals)
    print(f"{s / best:.2f}" if best else "-")
except (ValueError, ZeroDivisionError):
    print("-")
EOF
}

row() { # label better skein mosquitto mochi
	local label=$1 better=$2 s=$3 m=$4 c=$5
	printf '| %-48s | %12s | %12s | %12s | %10s |\n' "$label" "$(fmt_num "$s")" "$(fmt_num "$m")" "$(fmt_num "$c")" "$(ratio "$better" "$s" "$m" "$c")"
}

get() { # broker file-suffix jqpath
	case " $BROKERS " in
	*" $1 "*) value "$RES/$1-$2.json" "$3" ;;
	*) echo "-" ;;
	esac
}

echo
echo "skein bench comparison, $DURATION per scenario, $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "skein $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet 2>/dev/null || echo ' + uncommitted changes'), $(mosquitto -h 2>/dev/null | head -1) (set_tcp_nodelay $MOSQUITTO_NODELAY), mochi-mqtt $MOCHI_VERSION, $(go version | cut -d' ' -f3)"
echo "load average before: $LOAD0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "ratio = skein / best other: above 1 is better for rates, below 1 is better for latency and RSS; ! = lost messages or errors in that run"
echo
printf '| %-48s | %12s | %12s | %12s | %10s |\n' scenario skein mosquitto mochi ratio
printf '|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 50))" "$(printf -- '-%.0s' $(seq 14))" "$(printf -- '-%.0s' $(seq 14))" "$(printf -- '-%.0s' $(seq 14))" "$(printf -- '-%.0s' $(seq 12))"
for sc in ${SCENARIOS[@]+"${SCENARIOS[@]}"}; do
	IFS='|' read -r id label path better _ <<<"$sc"
	row "$label" "$better" "$(get skein "$id" "$path")" "$(get mosquitto "$id" "$path")" "$(get mochi "$id" "$path")"
done
row "$CONN_LABEL" high "$(get skein conn .conn_rate)" "$(get mosquitto conn .conn_rate)" "$(get mochi conn .conn_rate)"
row "$RSS_LABEL" low "$(get skein rss .per_conn_kib)" "$(get mosquitto rss .per_conn_kib)" "$(get mochi rss .per_conn_kib)"
