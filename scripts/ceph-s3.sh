#!/usr/bin/env bash
# A real S3 endpoint for tests: single-node Ceph (one mon, one BlueStore OSD on a sparse file, one
# radosgw on 127.0.0.1:7480) in a directory under /tmp, with cephx off (loopback only).
#
# Prints, on stdout and nothing else:
#   export FORGE_TEST_S3_ENDPOINT=… FORGE_TEST_S3_ACCESS_KEY_ID=… FORGE_TEST_S3_SECRET_ACCESS_KEY=…
# so `eval "$(scripts/ceph-s3.sh)"` sets them. Progress goes to stderr.
#
# Idempotent: when the radosgw started by an earlier run still answers, the credentials saved in
# $FORGE_CEPH_DIR/env are printed again and nothing is started. Stop it: scripts/ceph-s3.sh stop.
# Installs nothing; Debian needs: ceph-mon ceph-osd radosgw ceph-common (and curl).
set -euo pipefail

dir=${FORGE_CEPH_DIR:-/tmp/forge-ceph-s3}
port=7480
endpoint="http://127.0.0.1:$port"
say() { printf 'ceph-s3: %s\n' "$*" >&2; }
answers() { curl -s -o /dev/null --max-time 2 "$endpoint/"; }

# Ends the daemons an earlier run of this script recorded (their pid files), nothing else.
stop_ours() {
  local f pid
  for f in "$dir"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
  for f in "$dir"/run/*.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
}

if [ "${1:-}" = stop ]; then
  stop_ours
  rm -rf "$dir"
  say "stopped"
  exit 0
fi

# Our radosgw may be alive but slow to answer (a busy machine): give it time before starting over.
rgw_pid_file="$dir/run/client.rgw.a.pid"
if ! answers && [ -f "$dir/env" ] && [ -f "$rgw_pid_file" ] && kill -0 "$(cat "$rgw_pid_file")" 2>/dev/null; then
  say "radosgw from $dir runs but does not answer yet; waiting up to 60 s"
  for _ in $(seq 1 30); do answers && break; sleep 2; done
fi

if answers; then
  if [ -f "$dir/env" ]; then
    say "radosgw already answers on $endpoint; reusing $dir"
    cat "$dir/env"
    exit 0
  fi
  say "something answers on $endpoint but $dir/env (its credentials) is missing:"
  say "stop that server or set FORGE_TEST_S3_ENDPOINT/_ACCESS_KEY_ID/_SECRET_ACCESS_KEY yourself"
  exit 1
fi

for tool in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl; do
  command -v "$tool" >/dev/null || { say "$tool is missing (apt-get install ceph-mon ceph-osd radosgw ceph-common curl)"; exit 1; }
done

# A stale cluster (rebooted machine, a daemon died): start over from nothing.
if [ -d "$dir" ]; then say "the cluster in $dir no longer answers; starting a new one"; fi
stop_ours
rm -rf "$dir"
mkdir -p "$dir"/{run,log,mon.a,osd.0}
# Whatever fails from here on leaves no half-started daemons behind.
ready=
trap '[ -n "$ready" ] || stop_ours' EXIT
started=$(date +%s)
fsid=$(cat /proc/sys/kernel/random/uuid)
conf="$dir/ceph.conf"
cat >"$conf" <<CONF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:3300,v1:127.0.0.1:6789]
mon_initial_members = a
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
ms_bind_ipv6 = false
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
run_dir = $dir/run
pid_file = $dir/run/\$name.pid
admin_socket = $dir/run/\$name.asok
log_file = $dir/log/\$name.log
# One OSD: pools of size 1, few placement groups, no host-level spreading.
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_allow_pool_size_one = true
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
[mon.a]
mon_data = $dir/mon.a
# Commit map changes at once: each pool radosgw creates is a map change (1 s apart by default).
paxos_propose_interval = 0.05
paxos_min_wait = 0.01
[osd]
osd_data = $dir/osd.0
osd_objectstore = bluestore
bluestore_block_path = $dir/osd.0.block
bluestore_block_create = true
bluestore_block_size = 4294967296
# A test machine: small caches, no fsync-heavy discard work.
osd_memory_target = 939524096
bluestore_cache_autotune = false
bluestore_cache_size = 134217728
[client.rgw.a]
# With cephx off, radosgw must not ask the monitor for a secure session (it waits 300 s, then exits).
ms_mon_client_mode = crc
ms_client_mode = crc
client_mount_timeout = 60
rgw_frontends = beast endpoint=127.0.0.1:$port
rgw_dns_name = 127.0.0.1
CONF
c=(-c "$conf")

say "starting a monitor (data in $dir)"
monmaptool --create --fsid "$fsid" --addv a '[v2:127.0.0.1:3300,v1:127.0.0.1:6789]' "$dir/monmap" >/dev/null
ceph-mon "${c[@]}" --mkfs -i a --monmap "$dir/monmap" >"$dir/log/mon-mkfs.out" 2>&1
ceph-mon "${c[@]}" -i a >"$dir/log/mon.out" 2>&1 </dev/null

say "starting an OSD (BlueStore on the sparse file $dir/osd.0.block)"
uuid=$(cat /proc/sys/kernel/random/uuid)
id=$(timeout 60 ceph "${c[@]}" osd new "$uuid")
ceph-osd "${c[@]}" -i "$id" --mkfs --osd-uuid "$uuid" >"$dir/log/osd-mkfs.out" 2>&1 \
  || { say "OSD mkfs failed:"; cat "$dir/log/osd-mkfs.out" >&2; exit 1; }
ceph-osd "${c[@]}" -i "$id" >"$dir/log/osd.out" 2>&1 </dev/null

say "starting radosgw on $endpoint"
radosgw "${c[@]}" -n client.rgw.a >"$dir/log/rgw.out" 2>&1 </dev/null
for _ in $(seq 1 120); do answers && break; sleep 0.5; done
if ! answers; then
  say "radosgw did not answer within 60 s; its log:"
  tail -20 "$dir/log/client.rgw.a.log" >&2 || true
  exit 1
fi

key=$(head -c 10 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr a-f A-F)
secret=$(head -c 30 /dev/urandom | base64 | tr -d '/+=\n')
timeout 60 radosgw-admin "${c[@]}" user create --uid=forge-test --display-name='Forge tests' \
  --access-key="$key" --secret-key="$secret" >/dev/null

# The first bucket, object and multipart upload of a new cluster take seconds (placement groups
# become active on first use): pay that here rather than inside a test's time limit.
s3() { curl -sS -f --aws-sigv4 aws:amz:us-east-1:s3 --user "$key:$secret" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@"; }
warm="$endpoint/forge-warm-up"
s3 -X PUT "$warm" >/dev/null
s3 -X PUT --data-binary warm "$warm/object" >/dev/null
upload=$(s3 -X POST "$warm/parts?uploads=" | sed -n 's:.*<UploadId>\(.*\)</UploadId>.*:\1:p')
s3 -X DELETE "$warm/parts?uploadId=$upload" >/dev/null
s3 -X DELETE "$warm/object" >/dev/null
s3 -X DELETE "$warm" >/dev/null

echo "export FORGE_TEST_S3_ENDPOINT=$endpoint FORGE_TEST_S3_ACCESS_KEY_ID=$key FORGE_TEST_S3_SECRET_ACCESS_KEY=$secret" >"$dir/env"
ready=1
say "ready in $(( $(date +%s) - started )) s (stop: $0 stop)"
cat "$dir/env"
