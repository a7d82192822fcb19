#!/usr/bin/env bash
# Starts a local 5-replica raftchat cluster: five real `chatd` processes on
# 127.0.0.1:7001-7005, storage under one directory, TLS on every connection
# (certificates made once in DATA_DIR/certs by `chatctl certs init`).
# Ctrl-C stops them all.
#
#   scripts/local-cluster.sh [DATA_DIR]        (default: ./data)
#
# Clients need the CA:  export CHAT_CA=DATA_DIR/certs/ca.pem
#
# Extra chatd flags can be passed through CHATD_EXTRA_ARGS, e.g.
#   CHATD_EXTRA_ARGS="--snapshot-every 1000" scripts/local-cluster.sh
set -euo pipefail
# DATA_DIR is relative to where the script was started, not to the repo.
data=${1:-./data}
case $data in /*) ;; *) data="$PWD/$data" ;; esac
cd "$(dirname "$0")/.."
cargo build --release --bin chatd --bin chatctl --bin chat-tui
mkdir -p "$data"
ports=(7001 7002 7003 7004 7005)
certs="$data/certs"
if [ ! -e "$certs/ca.pem" ]; then
  ./target/release/chatctl certs init "$certs" \
    --replica-urls 1=127.0.0.1:7001,2=127.0.0.1:7002,3=127.0.0.1:7003,4=127.0.0.1:7004,5=127.0.0.1:7005 \
    > /dev/null
fi
pids=()
stop() {
  trap - INT TERM EXIT
  echo; echo "stopping replicas: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT
for id in 1 2 3 4 5; do
  peers=()
  for p in 1 2 3 4 5; do
    [ "$p" = "$id" ] || peers+=("$p=127.0.0.1:${ports[$((p-1))]}")
  done
  # shellcheck disable=SC2086
  ./target/release/chatd --server-id "$id" --port "${ports[$((id-1))]}" \
    --replica-urls "$(IFS=,; echo "${peers[*]}")" \
    --server-storage "$data/replica-$id" \
    --tls-cert "$certs/replica-$id.pem" --tls-key "$certs/replica-$id.key" --tls-ca "$certs/ca.pem" \
    ${CHATD_EXTRA_ARGS:-} \
    2> "$data/replica-$id.log" &
  pids+=($!)
done
echo "5 replicas running on 127.0.0.1:7001-7005 with TLS (logs: $data/replica-N.log)."
echo "Try:  export CHAT_CA=$certs/ca.pem; ./target/release/chatctl status"
echo "Admin commands (members add/remove) also need: CHAT_CERT=$certs/admin.pem CHAT_KEY=$certs/admin.key"
echo "Ctrl-C stops them all."
wait
