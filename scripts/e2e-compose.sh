#!/usr/bin/env bash
# End-to-end test of docker-compose.yml: three Skein containers form a cluster by
# themselves, deliver between nodes with the real mosquitto clients, survive the
# loss of one node, and take it back.
#
#   scripts/e2e-compose.sh
#
# Needs a Docker engine, docker compose (v2 plugin) or docker-compose (v1), Go,
# curl, mosquitto_pub and mosquitto_sub. Without a Docker engine it prints
# "SKIPPED" and exits 0. No registry is needed: the image is built FROM scratch
# around a binary compiled here (deploy/docker/Dockerfile.prebuilt), tagged
# skein:local, and compose runs with --no-build. Only the three broker services
# start (Prometheus and Grafana need images from a registry).
#
# Environment:
#   SKEIN_E2E_TIMEOUT   bound of every wait, in seconds (default 60)
#   SKEIN_E2E_PROJECT   compose project name (default skein-e2e)
#   SKEIN_E2E_KEEP=1    leave the cluster running at the end (for debugging)
#   SKEIN{1,2,3}_MQTT_PORT, SKEIN{1,2,3}_HTTP_PORT
#                       host ports (default 1883-1885 and 18083-18085, or free
#                       ones when those are taken)
#   SKEIN_NET_PREFIX    first three octets of the compose network (see the
#                       compose file)
#
# Every check prints a PASS or FAIL line; the first FAIL stops the test, prints the
# containers' logs and exits 1.
set -uo pipefail
cd "$(dirname "$0")/.."

TIMEOUT=${SKEIN_E2E_TIMEOUT:-60}
PROJECT=${SKEIN_E2E_PROJECT:-skein-e2e}

banner() {
	echo "################################################################"
	echo "## $*"
	echo "################################################################"
}

if ! command -v docker >/dev/null 2>&1 || ! docker info >/dev/null 2>&1; then
	banner "SKIPPED: no Docker engine (docker info failed): the compose e2e test did not run"
	exit 0
fi
if docker compose version >/dev/null 2>&1; then
	COMPOSE=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
	COMPOSE=(docker-compose)
else
	banner "SKIPPED: a Docker engine answers but neither 'docker compose' nor docker-compose is installed"
	exit 0
fi

step() { printf '\n--- %s\n' "$*"; }
pass() { echo "PASS: $*"; }
fail() {
	echo "FAIL: $*"
	exit 1
}

for tool in go curl timeout mosquitto_pub mosquitto_sub; do
	command -v "$tool" >/dev/null 2>&1 || fail "$tool is not installed"
done

dc() { "${COMPOSE[@]}" -p "$PROJECT" "$@"; }

workdir=$(mktemp -d)
started=0
cleanup() {
	local rc=$?
	if [ "$started" = 1 ]; then
		if [ "$rc" != 0 ]; then
			step "logs of the failed run"
			dc ps || true
			dc logs --no-color --tail=60 skein1 skein2 skein3 2>&1 || true
		fi
		if [ "${SKEIN_E2E_KEEP:-0}" = 1 ]; then
			echo "SKEIN_E2E_KEEP=1: leaving project $PROJECT running; stop it with: ${COMPOSE[*]} -p $PROJECT down -v"
		else
			step "tear down"
			dc down -v --remove-orphans >/dev/null 2>&1 || echo "warning: '${COMPOSE[*]} -p $PROJECT down -v' failed"
		fi
	fi
	rm -f deploy/docker/skein
	rm -rf "$workdir"
	if [ "$rc" = 0 ]; then
		banner "e2e-compose: all checks passed"
	else
		banner "e2e-compose: FAILED"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for SECONDS COMMAND...: run COMMAND every second until it succeeds or the
# time is up.
wait_for() {
	local deadline=$((SECONDS + $1))
	shift
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 1
	done
}

# Host ports: the defaults of the compose file unless taken (other brokers or test
# runs on this machine), then free ones.
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
picked=" "
# pick_port DEFAULT: sets PORT to DEFAULT, or to a free port when DEFAULT is taken.
pick_port() {
	local p=$1 tries=0
	while port_in_use "$p" || [[ "$picked" == *" $p "* ]]; do
		tries=$((tries + 1))
		((tries < 100)) || fail "no free host port found"
		p=$((20000 + RANDOM % 40000))
	done
	picked+="$p "
	PORT=$p
}
declare -a MQTT HTTP
defaults_mqtt=(0 1883 1884 1885)
defaults_http=(0 18083 18084 18085)
for i in 1 2 3; do
	mv="SKEIN${i}_MQTT_PORT"
	hv="SKEIN${i}_HTTP_PORT"
	if [ -n "${!mv:-}" ]; then MQTT[i]=${!mv}; else pick_port "${defaults_mqtt[i]}" && MQTT[i]=$PORT; fi
	if [ -n "${!hv:-}" ]; then HTTP[i]=${!hv}; else pick_port "${defaults_http[i]}" && HTTP[i]=$PORT; fi
	export "$mv=${MQTT[i]}" "$hv=${HTTP[i]}"
done
echo "host ports: MQTT ${MQTT[1]} ${MQTT[2]} ${MQTT[3]}, HTTP ${HTTP[1]} ${HTTP[2]} ${HTTP[3]}; compose: ${COMPOSE[*]} -p $PROJECT"

api() { curl -fsS --max-time 5 "http://127.0.0.1:${HTTP[$1]}$2"; }
ready() { api "$1" /readyz; }

# cluster_ok NODE ALIVE: NODE's /api/v1/cluster names a leader and ALIVE alive
# members.
cluster_ok() {
	local j leader alive
	j=$(api "$1" /api/v1/cluster) || return 1
	leader=$(grep -o '"leader":"[^"]*"' <<<"$j" | cut -d'"' -f4)
	alive=$(grep -o '"state":"alive"' <<<"$j" | wc -l)
	[ -n "$leader" ] && [ "$alive" -eq "$2" ]
}
leader_of() { api "$1" /api/v1/cluster | grep -o '"leader":"[^"]*"' | cut -d'"' -f4; }
# member_field JSON NAME FIELD: a field of one member of a /api/v1/cluster answer.
member_field() {
	grep -o "\"name\":\"$2\",[^}]*" <<<"$1" | grep -o "\"$3\":\"\{0,1\}[^,\"]*" | sed 's/.*://; s/"//g'
}

# route_ready FROM TO TOPIC: a subscription to TOPIC on node TO is committed to
# the route table and node FROM's replica holds it.
route_ready() {
	local from=$1 to=$2 topic=$3 jt jf own seen
	api "$to" "/api/v1/routes?topic=$topic" | grep -q "\"topic\":\"$topic\"" || return 1
	jt=$(api "$to" /api/v1/cluster) || return 1
	grep -q '"pending_route_changes":0' <<<"$jt" || return 1
	own=$(member_field "$jt" "skein$to" routes)
	jf=$(api "$from" /api/v1/cluster) || return 1
	seen=$(member_field "$jf" "skein$to" routes)
	[ -n "$own" ] && [ "$own" -gt 0 ] && [ "$own" = "$seen" ]
}

n=0
# deliver FROM TO: a QoS 1 message published on node FROM reaches a QoS 1
# subscriber on node TO.
deliver() {
	local from=$1 to=$2 topic payload out rc got
	n=$((n + 1))
	topic="e2e/q1/$n"
	payload="hello-$n-$RANDOM"
	out="$workdir/sub$n"
	mosquitto_sub -h 127.0.0.1 -p "${MQTT[to]}" -i "e2e-sub-$n" -q 1 -t "$topic" -C 1 -W "$TIMEOUT" -v >"$out" 2>&1 &
	local sub=$!
	if ! wait_for "$TIMEOUT" route_ready "$from" "$to" "$topic"; then
		kill "$sub" 2>/dev/null
		fail "route of $topic (subscriber on skein$to) did not reach skein$from within ${TIMEOUT}s"
	fi
	if ! timeout "$TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "${MQTT[from]}" -i "e2e-pub-$n" -q 1 -t "$topic" -m "$payload"; then
		kill "$sub" 2>/dev/null
		fail "QoS 1 publish on skein$from (no PUBACK)"
	fi
	wait "$sub"
	rc=$?
	got=$(cat "$out")
	if [ "$rc" = 0 ] && [ "$got" = "$topic $payload" ]; then
		pass "QoS 1 publish on skein$from (port ${MQTT[from]}) received on skein$to (port ${MQTT[to]})"
	else
		fail "QoS 1 publish on skein$from not received on skein$to: mosquitto_sub exit $rc, got: $got"
	fi
}

retained_is() {
	local got
	got=$(timeout 10 mosquitto_sub -h 127.0.0.1 -p "${MQTT[$1]}" -i "e2e-ret-$RANDOM" -q 1 -t "$2" -C 1 -W 3 -v 2>/dev/null)
	[ "$got" = "$2 $3" ]
}

# check_retained NODE TOPIC PAYLOAD: a new subscriber on NODE gets the retained
# message.
check_retained() {
	if wait_for "$TIMEOUT" retained_is "$1" "$2" "$3"; then
		pass "retained message on $2 seen by a new subscriber on skein$1"
	else
		fail "retained message on $2 ('$3') not seen by a new subscriber on skein$1 within ${TIMEOUT}s"
	fi
}

# wait_cluster ALIVE NODES...: every listed node is ready and sees a leader and
# ALIVE alive members, and they agree on the leader.
wait_cluster() {
	local want=$1 i leader l
	shift
	for i in "$@"; do
		wait_for "$TIMEOUT" ready "$i" || fail "skein$i /readyz not ready within ${TIMEOUT}s"
		pass "skein$i /readyz answers ready"
		wait_for "$TIMEOUT" cluster_ok "$i" "$want" ||
			fail "skein$i /api/v1/cluster: no leader or not $want alive members within ${TIMEOUT}s: $(api "$i" /api/v1/cluster)"
		pass "skein$i /api/v1/cluster: $want alive members, leader $(leader_of "$i")"
	done
	# After a leader stops, the others may still name it for a moment, or name none
	# while they elect a new one: wait until they agree on one of themselves.
	if ! wait_for "$TIMEOUT" leaders_agree "$@"; then
		l=""
		for i in "$@"; do l+=" skein$i:$(leader_of "$i")"; done
		fail "nodes $* do not agree on a leader among themselves within ${TIMEOUT}s:$l"
	fi
	leader=$(leader_of "$1")
	pass "nodes $* agree on the leader: $leader"
}

# leaders_agree NODES...: every listed node names the same leader, one of them.
leaders_agree() {
	local leader l i among=0
	leader=$(leader_of "$1") || return 1
	for i in "$@"; do
		l=$(leader_of "$i") || return 1
		[ "$l" = "$leader" ] || return 1
		[ "$l" = "skein$i" ] && among=1
	done
	[ "$among" = 1 ]
}

step "build the binary (CGO_ENABLED=0) and the FROM-scratch image skein:local"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o deploy/docker/skein ./cmd/skein || fail "go build ./cmd/skein"
pass "static binary built"
if ! docker build -f deploy/docker/Dockerfile.prebuilt -t skein:local deploy/docker >"$workdir/build.log" 2>&1; then
	cat "$workdir/build.log"
	fail "docker build -f deploy/docker/Dockerfile.prebuilt"
fi
pass "image skein:local built ($(docker image inspect skein:local --format '{{.Size}}') bytes)"
user=$(docker image inspect skein:local --format '{{.Config.User}}')
[ "$user" = "65532:65532" ] || fail "image user is '$user', want 65532:65532"
pass "image runs as non-root user $user"

step "start skein1, skein2, skein3"
dc down -v --remove-orphans >/dev/null 2>&1 || true # a previous run's leftovers
started=1
dc up -d --no-build skein1 skein2 skein3 || fail "${COMPOSE[*]} up"
pass "compose project $PROJECT started"
wait_cluster 3 1 2 3
j=$(api 1 /api/v1/cluster)
voters=$(grep -o '"suffrage":"voter"' <<<"$j" | wc -l)
[ "$voters" -eq 3 ] || fail "want 3 Raft voters, skein1 reports $voters: $j"
pass "3 Raft voters"

health() { [ "$(docker inspect --format '{{.State.Health.Status}}' "$(dc ps -q "$1")")" = healthy ]; }
for i in 1 2 3; do
	wait_for "$TIMEOUT" health "skein$i" || fail "skein$i container not healthy within ${TIMEOUT}s (compose healthcheck)"
done
pass "compose healthchecks (/skein ctl nodes) report all three healthy"

metrics=$(api 1 /metrics) || fail "GET /metrics"
for m in skein_connections skein_messages_received_total skein_messages_sent_total skein_messages_dropped_total \
	skein_delivery_latency_seconds_bucket skein_raft_leader skein_raft_commit_index skein_raft_applied_index \
	skein_cluster_members go_goroutines go_memstats_heap_inuse_bytes process_resident_memory_bytes; do
	grep -q "^$m[ {]" <<<"$metrics" || fail "metric $m (used by the Grafana dashboard) missing from /metrics"
done
pass "the metrics the Grafana dashboard uses are exported"

step "deliver across nodes"
deliver 1 3
deliver 3 1
timeout "$TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "${MQTT[1]}" -i e2e-retain-1 -q 1 -r -t e2e/retained/1 -m "kept-1" || fail "retained publish on skein1"
pass "retained QoS 1 publish on skein1"
check_retained 3 e2e/retained/1 kept-1
check_retained 2 e2e/retained/1 kept-1

fwd=$(api 1 /metrics | grep '^skein_forwarded_messages_total{peer="skein3"}' | awk '{print $2}')
if [ -n "$fwd" ] && awk "BEGIN{exit !($fwd >= 1)}"; then
	pass "skein_forwarded_messages_total{peer=\"skein3\"} on skein1 is $fwd"
else
	fail "skein1 reports no message forwarded to skein3: '$fwd'"
fi

step "stop skein2"
dc stop skein2 || fail "${COMPOSE[*]} stop skein2"
pass "skein2 stopped"
dead_seen() { [ "$(member_field "$(api 1 /api/v1/cluster)" skein2 state)" = dead ]; }
wait_for "$TIMEOUT" dead_seen || fail "skein1 does not see skein2 dead within ${TIMEOUT}s"
pass "skein1 sees skein2 dead"
wait_cluster 2 1 3
deliver 1 3
deliver 3 1
timeout "$TIMEOUT" mosquitto_pub -h 127.0.0.1 -p "${MQTT[1]}" -i e2e-retain-2 -q 1 -r -t e2e/retained/2 -m "kept-2" || fail "retained publish on skein1 with skein2 down"
pass "retained QoS 1 publish on skein1 while skein2 is down"
check_retained 3 e2e/retained/2 kept-2

step "restart skein2"
dc start skein2 || fail "${COMPOSE[*]} start skein2"
pass "skein2 started"
wait_cluster 3 2 1 3
deliver 1 2
deliver 2 3
check_retained 2 e2e/retained/1 kept-1
check_retained 2 e2e/retained/2 kept-2
